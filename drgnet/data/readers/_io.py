"""File helpers shared by the dataset readers: folders, label tables, grades and lesion masks."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from drgnet.labels import GRADES

#: Extensions tried, in this order, when a label file names an image without one.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp")
#: Extensions a lesion mask may have.
MASK_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff", ".png", ".gif", ".bmp", ".jpg", ".jpeg")
_JPEG = frozenset({".jpg", ".jpeg"})


# --------------------------------------------------------------------------------------------- folders


def _folder_key(name: str) -> str:
    """``"a. Training Set"`` and ``"training_set"`` give the same key; used only after an exact miss."""
    name = re.sub(r"^\s*[0-9a-z]\.\s*", "", name.lower())
    return re.sub(r"[^0-9a-z]", "", name)


def find_dir(parent: Path, *names: str) -> Path | None:
    """The first child folder of ``parent`` called one of ``names``.

    An exact name wins; failing that, a folder whose name differs only in case, punctuation or a leading
    enumerator (``"a. "``, ``"1. "``) is accepted, because re-uploads of public datasets often rename them.
    """
    if not parent.is_dir():
        return None
    for name in names:
        if (parent / name).is_dir():
            return parent / name
    try:
        children = sorted(p for p in parent.iterdir() if p.is_dir())
    except OSError:
        return None
    for name in names:
        key = _folder_key(name)
        for child in children:
            if key and _folder_key(child.name) == key:
                return child
    return None


def find_file(parent: Path, *names: str) -> Path | None:
    """The first file of ``parent`` called one of ``names`` (exact, then case-insensitive)."""
    if not parent.is_dir():
        return None
    for name in names:
        if (parent / name).is_file():
            return parent / name
    try:
        files = {p.name.lower(): p for p in sorted(parent.iterdir()) if p.is_file()}
    except OSError:
        return None
    for name in names:
        if name.lower() in files:
            return files[name.lower()]
    return None


def _visible_files(folder: Path, extensions: Iterable[str]) -> list[Path]:
    exts = {e.lower() for e in extensions}
    out = []
    with os.scandir(folder) as it:
        for entry in it:
            # "._x.jpg" files are macOS resource forks that ride along in zip archives.
            if entry.name.startswith(".") or not entry.is_file():
                continue
            if os.path.splitext(entry.name)[1].lower() in exts:
                out.append(Path(entry.path))
    return sorted(out)


def list_images(folder: Path) -> list[Path]:
    """Every image file in ``folder`` (not recursive), sorted; two files with one stem are an error."""
    files = _visible_files(folder, IMAGE_EXTENSIONS)
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise ValueError(
                f"{folder}: two images named {path.stem!r} ({seen[path.stem].name} and {path.name}); "
                "remove one so every image has a unique name"
            )
        seen[path.stem] = path
    return files


def has_images(folder: Path | None) -> bool:
    """True when ``folder`` exists and holds at least one image file."""
    if folder is None or not folder.is_dir():
        return False
    try:
        with os.scandir(folder) as it:
            for entry in it:
                ext = os.path.splitext(entry.name)[1].lower()
                if not entry.name.startswith(".") and ext in IMAGE_EXTENSIONS:
                    return True
    except OSError:
        return False
    return False


class FileIndex:
    """Files of one folder looked up by name or by stem, listed once."""

    def __init__(self, folder: Path, extensions: Iterable[str]) -> None:
        self.folder = folder
        self._by_name: dict[str, Path] = {}
        self._by_stem: dict[str, list[Path]] = {}
        exts = tuple(e.lower() for e in extensions)
        files = _visible_files(folder, exts) if folder.is_dir() else []
        # Preferred extensions first, so a stem lookup returns the most likely file.
        files.sort(key=lambda p: (exts.index(p.suffix.lower()), p.name))
        for path in files:
            self._by_name[path.name] = path
            self._by_stem.setdefault(path.stem, []).append(path)

    def __len__(self) -> int:
        return len(self._by_name)

    def find(self, key: str) -> Path | None:
        """The file called ``key``, or whose stem is ``key`` (or ``key`` less its image extension).

        Raises:
            ValueError: Several files share the stem ``key`` (e.g. ``x.tif`` and ``x.png``).
        """
        if key in self._by_name:
            return self._by_name[key]
        # "0001_2.png" also finds "0001_2.tif": masks need not share the image's format.
        hits = self._by_stem.get(key) or self._by_stem.get(strip_image_extension(key), [])
        if len(hits) > 1:
            names = ", ".join(p.name for p in hits)
            raise ValueError(f"{self.folder}: several files match {key!r} ({names}); keep one")
        return hits[0] if hits else None


def strip_image_extension(name: str) -> str:
    """``"10_left.jpeg"`` -> ``"10_left"``; names without a known image extension are returned as given."""
    root, ext = os.path.splitext(name)
    return root if ext.lower() in IMAGE_EXTENSIONS else name


# --------------------------------------------------------------------------------------------- tables


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Spreadsheet exports on Windows are often cp1252; latin-1 decodes any byte, so it never fails.
        return data.decode("latin-1")


def read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a CSV (comma, semicolon or tab separated) as ``(line number, cells)``.

    Cells are stripped; line numbers are 1-based as a text editor shows them.
    """
    text = _read_text(path)
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ","
    if "," not in first:
        if "\t" in first:
            delimiter = "\t"
        elif ";" in first:
            delimiter = ";"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    line = 1
    for cells in reader:
        cells = [c.strip() for c in cells]
        if any(cells):
            rows.append((line, cells))
        line = reader.line_num + 1
    return rows


def read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """A CSV with a header row: ``(column names, [(line number, {column: cell})])``.

    Header names are stripped (the IDRiD files have ``"Risk of macular edema "``) and empty header cells
    (trailing commas) are dropped.

    Raises:
        ValueError: The file is empty or two columns share a name.
    """
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"{path}: the label file is empty")
    _, header = rows[0]
    columns = [(i, name) for i, name in enumerate(header) if name]
    names = [name for _, name in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{path}: column {dupes[0]!r} appears more than once in the header")
    records = []
    for line, cells in rows[1:]:
        records.append((line, {name: (cells[i] if i < len(cells) else "") for i, name in columns}))
    return names, records


def _column_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def pick_column(columns: list[str], wanted: str | None, candidates: Iterable[str]) -> str | None:
    """The column named ``wanted``, or else the first of ``candidates`` present (case/space-insensitive).

    Raises:
        ValueError: ``wanted`` is given but not a column (the message lists the columns).
    """
    keys = {_column_key(c): c for c in columns}
    if wanted is not None:
        if wanted in columns:
            return wanted
        if _column_key(wanted) in keys:
            return keys[_column_key(wanted)]
        raise ValueError(f"no column {wanted!r}; the columns are: {', '.join(columns)}")
    for cand in candidates:
        if _column_key(cand) in keys:
            return keys[_column_key(cand)]
    return None


def parse_grade(text: str, where: str, *, allowed: Iterable[int] = GRADES, allow_empty: bool = False) -> int | None:
    """An integer grade from a label-file cell.

    Args:
        text: The cell; ``"2"`` and ``"2.0"`` both give 2.
        where: Where the cell is, for the error message (``"labels.csv, line 7"``).
        allowed: Valid values.
        allow_empty: Return None for an empty cell instead of failing.

    Raises:
        ValueError: The cell is empty, not an integer, or not one of ``allowed``.
    """
    s = text.strip()
    if not s:
        if allow_empty:
            return None
        raise ValueError(f"{where}: the grade is empty")
    try:
        value = int(s)
    except ValueError:
        try:
            f = float(s)
        except ValueError:
            f = float("nan")
        if not f.is_integer():
            raise ValueError(f"{where}: grade {text!r} is not an integer") from None
        value = int(f)
    allowed = tuple(allowed)
    if value not in allowed:
        span = f"{min(allowed)}-{max(allowed)}"
        raise ValueError(f"{where}: grade {value} is outside {span}")
    return value


# --------------------------------------------------------------------------------------------- masks


def _colour_and_alpha(arr: np.ndarray, has_alpha: bool) -> np.ndarray:
    """Lesion pixels of a multi-channel array before thresholding: the strongest colour channel.

    Alpha is not a colour: an opaque RGBA mask would otherwise be lesion everywhere. It is used only when
    the colour channels are blank and alpha varies, i.e. strokes painted as opacity on a transparent sheet.
    """
    if not has_alpha:
        return arr.max(axis=2)
    colour = arr[..., :-1].max(axis=2)
    alpha = arr[..., -1]
    if not colour.any() and alpha.min() != alpha.max():
        return alpha
    return colour


def _mask_from_pil(im: Image.Image) -> tuple[np.ndarray, bool]:
    # Photographs are read upright (EXIF applied); a mask that carries its own orientation must match.
    im = ImageOps.exif_transpose(im) or im
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "PA":
        im = im.convert("RGBA")
    elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    arr = np.asarray(im)
    return arr, im.mode in ("LA", "La", "RGBA", "RGBa")


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one lesion mask as an ``(H, W)`` bool array.

    Any format Pillow (or, failing that, OpenCV) reads, at any bit depth, grey or colour: a pixel is lesion
    when any colour channel is above zero. JPEG masks use a threshold of 127 so compression ringing around
    a lesion does not count. For masks with alpha see the note in the code.

    Raises:
        ValueError: The file cannot be read as an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.seek(0)
            arr, has_alpha = _mask_from_pil(im)
    except (OSError, ValueError, SyntaxError) as exc:
        # Some TIFF compressions are beyond Pillow; OpenCV's libtiff usually reads them.
        arr = None
        try:
            import cv2

            arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        except ImportError:
            pass
        if arr is None:
            raise ValueError(f"{path}: cannot read this lesion mask as an image ({exc})") from exc
        has_alpha = arr.ndim == 3 and arr.shape[2] in (2, 4)
    if arr.ndim == 3:
        arr = _colour_and_alpha(arr, has_alpha)
    if arr.ndim != 2:
        raise ValueError(f"{path}: a lesion mask must be a 2-D image, got an array of shape {arr.shape}")
    threshold = 127 if path.suffix.lower() in _JPEG else 0
    return arr > threshold
