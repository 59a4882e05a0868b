"""What to screen: photographs named one by one, found in folders (``IMAGE_SUFFIXES``) or listed in CSV files."""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Sequence
from pathlib import Path

#: Files a folder search picks up (explicit paths and CSV lists take any file).
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm", ".jp2", ".dcm", ".dicom"}
)

#: Largest file read as one photograph (200 MB: several times a raw 80-megapixel TIFF); ``--max-file-mb``.
MAX_FILE_BYTES = 200 * 1024 * 1024


def collect_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Expand folders, glob patterns, image files and CSV lists into one ordered list of paths.

    - A folder: every file with an image suffix (``IMAGE_SUFFIXES``) below it, recursively, sorted.
    - A pattern with ``*``, ``?`` or ``[``: the files it matches (``**`` recurses), sorted.
    - A ``.csv`` file: the column ``path``, else the first column; relative paths are taken relative to the
      CSV's folder. Listed files that do not exist become error rows later (a missing file is a finding).
    - Anything else: the file itself, whatever its suffix.

    Only regular files are read later: a listed folder, FIFO, device or socket becomes an error row saying so
    (``read_photo_file``), so nothing can make a run hang or read forever.

    Duplicates keep their first position.

    Raises:
        ValueError: An input is neither an existing file or folder nor a pattern that matches something.
    """
    out: list[str] = []
    for raw in inputs:
        item = str(raw)
        p = Path(item)
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file() and p.suffix.lower() == ".csv":
            out += _paths_from_csv(p)
        elif p.is_file():
            out.append(item)
        elif p.exists() and not any(c in item for c in "*?["):
            out.append(item)  # a FIFO, a device, a socket: reported as an error row, never read
        elif any(c in item for c in "*?["):
            matches = sorted(m for m in glob.glob(item, recursive=True) if Path(m).is_file())
            if not matches:
                raise ValueError(f"{item}: the pattern matches no file")
            out += matches
        else:
            raise ValueError(f"{item}: no such file or folder")
    return list(dict.fromkeys(out))


def _paths_from_csv(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    if "path" in header:
        col, body = header.index("path"), rows[1:]
    else:
        # No `path` column: the first column; its first cell is a header unless it names an existing file.
        col = 0
        first = rows[0][0].strip() if rows[0] else ""
        body = rows if first and (path.parent / first).is_file() else rows[1:]
    out = []
    for row in body:
        if len(row) <= col or not row[col].strip():
            continue
        p = Path(row[col].strip())
        out.append(str(p if p.is_absolute() else path.parent / p))
    return out
