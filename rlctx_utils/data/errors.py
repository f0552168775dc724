"""Errors of the data layer: each says, in one line, what went wrong and what to do."""

from __future__ import annotations


class DataError(ValueError):
    """Base class for data-layer errors (printed as one line by the ``rlctx`` command)."""


class UnsafeArchiveError(DataError):
    """An archive that must not be read further (decompression bomb, too many members, corrupt)."""


class SpecError(DataError):
    """A PyPI data spec (``configs/data/*.toml``) that cannot be used."""


class DownloadError(DataError):
    """A source distribution that could not be fetched or whose sha256 does not match its pin."""


class MiningConfigError(DataError):
    """An output folder that was started with a different mining configuration."""


class LCAUnavailableError(DataError):
    """The Long Code Arena benchmark is neither local nor reachable on the hub."""
