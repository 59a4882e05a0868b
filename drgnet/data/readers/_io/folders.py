"""Finding a dataset's folders and files under the names its many releases use, and listing its photographs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

#: Extensions tried, in this order, when a label file names an image without one.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp")


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
