"""Unlabelled photographs: every image under a folder."""

from __future__ import annotations

from pathlib import Path

from drgnet.data.readers._base import DatasetReader, _Entry
from drgnet.data.readers._io import (
    IMAGE_EXTENSIONS,
    has_images,
)


class ImageFolderReader(DatasetReader):
    """Unlabelled photographs: every image file in a folder and its sub-folders (e.g. a new clinic's export).

    Names are the paths relative to the folder, without extension and with ``/`` kept, so two cameras' ``001.jpg``
    in different sub-folders stay distinct. Samples have no grade and no masks.
    """

    layout = "folder"
    title = "folder of photographs"
    default_source = "folder"

    def _scan(self) -> None:
        if not self.root.is_dir():
            raise self._not_this("not a folder")
        files = sorted(
            p
            for p in self.root.rglob("*")
            if p.is_file()
            and p.suffix.lower() in IMAGE_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(self.root).parts)
        )
        if not files:
            raise self._not_this("no image files found")
        entries = [
            _Entry(name=str(p.relative_to(self.root).with_suffix("")), path=p, source=self.source) for p in files
        ]
        self._set_entries(entries)

    @classmethod
    def expected(cls, split: str | None = None) -> str:
        return f"image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in the folder or its sub-folders"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return root.is_dir() and has_images(root)
