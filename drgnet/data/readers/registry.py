"""Layout name -> reader class; detecting a folder's layout and opening it with the right reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drgnet.data.readers._base import DatasetReader
from drgnet.data.readers.ddr import DDRGradingReader, DDRSegmentationReader
from drgnet.data.readers.fgadr import FGADRReader
from drgnet.data.readers.folder import ImageFolderReader
from drgnet.data.readers.idrid import IDRiDGradingReader, IDRiDSegmentationReader
from drgnet.data.readers.synthetic import SyntheticReader
from drgnet.data.readers.table import CSVReader

#: Layout name -> reader class.
LAYOUTS: dict[str, type[DatasetReader]] = {
    cls.layout: cls
    for cls in (
        IDRiDSegmentationReader,
        IDRiDGradingReader,
        FGADRReader,
        DDRGradingReader,
        DDRSegmentationReader,
        CSVReader,
        SyntheticReader,
        ImageFolderReader,
    )
}


def _safe_match(cls: type[DatasetReader], root: Path) -> bool:
    try:
        return cls.matches(root)
    except OSError:
        return False


def detect_layout(path: str | Path) -> str:
    """Name of the layout (a key of ``LAYOUTS``) that ``path`` holds.

    The dataset-specific layouts are tried first; ``csv`` only when none of them matches, because most
    datasets also contain some CSV, and ``folder`` (unlabelled photographs) last of all.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: No layout matches (the message lists what each expects), or several do, as at the root
            of IDRiD or DDR, which hold both a segmentation and a grading set.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    hits = [name for name, cls in LAYOUTS.items() if name not in ("csv", "folder") and _safe_match(cls, root)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ValueError(
            f"{root}: holds several datasets ({', '.join(hits)}); pass layout= one of them, "
            "or open the sub-folder you want"
        )
    if _safe_match(CSVReader, root):
        return "csv"
    if _safe_match(ImageFolderReader, root):
        return "folder"
    tried = "\n".join(f"  {name}: {cls.expected()}" for name, cls in LAYOUTS.items())
    raise ValueError(f"{root}: cannot tell which dataset layout this is. Tried:\n{tried}")


def open_dataset(path: str | Path, layout: str = "auto", split: str | None = None, **options: Any) -> DatasetReader:
    """Open a dataset folder (or label table) with the right reader.

    Args:
        path: Dataset root, one of its parts, or (for ``csv``) the CSV file.
        layout: A key of ``LAYOUTS``, or ``"auto"`` to detect it with :func:`detect_layout`.
        split: Official split (``"train"``, ``"test"``, and ``"valid"`` for DDR; ``"val"`` is accepted).
            None gives the default: ``"train"`` where the source has official splits, everything where it
            has none (FGADR, synthetic; use :func:`split_indices` there).
        **options: Passed to the reader, e.g. ``skip_missing=True``, ``include_ungradable=True``,
            ``id_column=...``, ``source=...``.

    Raises:
        ValueError: Unknown layout (the message lists the valid ones), or the folder does not hold it.
    """
    if layout == "auto":
        layout = detect_layout(path)
    try:
        cls = LAYOUTS[layout]
    except KeyError:
        raise ValueError(f"unknown dataset layout {layout!r}; choose one of: auto, {', '.join(LAYOUTS)}") from None
    return cls(path, split, **options)
