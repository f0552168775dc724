"""Display names of the paper's concepts, shared by tables, figures and reports."""

from __future__ import annotations

#: Registry name of each composer -> the label the paper prints.
COMPOSER_LABELS: dict[str, str] = {
    "file_level": "File-level",
    "path_distance_py": "Path Distance .py",
    "lines_iou_py": "Lines IoU .py",
    "code_chunks_py": "Code Chunks .py",
    "half_memory_py": "Half-memory .py",
    "declarations_py": "Declarations .py",
    "text_chunks_py": "Text Chunks .py",
    "text_files": "Text files",
    "random_files": "Random files",
    "random_py": "Random .py",
    "mixed": "Mixed context",
    "random_tokens": "Random tokens",
    "duplication": "Duplication",
    "leak": "Leak",
    "masked_leak": "Masked Leak",
}
LABEL_TO_COMPOSER = {v: k for k, v in COMPOSER_LABELS.items()}

#: Composers the paper calls unrealistic probes (kept out of the main conclusions).
UNREALISTIC = ("random_tokens", "duplication", "leak", "masked_leak")

MODES = ("original", "reversed", "irrelevant")
LINE_TYPES = ("inproject", "infile")

#: The paper's colours (Okabe-Ito): File-level blue, Path Distance vermillion, then the rest.
COLORS: dict[str, str] = {
    "file_level": "#0072B2",
    "path_distance_py": "#D55E00",
    "lines_iou_py": "#009E73",
    "code_chunks_py": "#CC79A7",
    "half_memory_py": "#E69F00",
    "declarations_py": "#56B4E9",
    "text_chunks_py": "#F0E442",
    "text_files": "#999999",
    "random_files": "#666666",
    "random_py": "#000000",
    "mixed": "#882255",
    # the probes: colours that cannot be mistaken for File-level blue or Path Distance vermillion
    "duplication": "#AA4499",
    "random_tokens": "#332288",
    "leak": "#44AA99",
    "masked_leak": "#117733",
}
OURS_COLOR = "#444444"


def checkpoint_label(composer: str | None, mode: str | None = None, loss: str | None = None,
                     theta: float | None = None, *, with_loss: bool = False) -> str:
    """'Path Distance .py (reversed)', 'File-level, θ=500,000', ... as the paper names runs."""
    if composer is None:
        return "Base model" + (f", θ={theta:,.0f}" if theta else "")
    label = COMPOSER_LABELS.get(composer, composer)
    if composer == "file_level" and theta:
        label += f", θ={theta:,.0f}"
    if mode and mode != "original":
        label += f" ({mode})"
    if with_loss and loss:
        label += f", {loss}"
    return label


#: Start of the ``note`` of every summary row of a run the paper does not have (LoRA, YaRN):
#: such rows are shown beside the grid, never inside the paper's tables or findings.
BEYOND_PAPER = "beyond the paper"


def is_beyond_paper(df):
    """Boolean mask (a Series) of a results frame's rows of runs beyond the paper, by their ``note``."""
    import pandas as pd

    if "note" not in df:
        return pd.Series(False, index=df.index)
    return df["note"].fillna("").astype(str).str.startswith(BEYOND_PAPER)
