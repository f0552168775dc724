"""``python3 -m rlctx_utils.gpu bundle|run|import ...`` (the GPU machine has no ``rlctx`` script)."""

import sys

from .cli import main

sys.exit(main())
