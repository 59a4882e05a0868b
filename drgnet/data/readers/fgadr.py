"""FGADR (Seg-set): photographs, lesion masks per folder and one grading CSV."""

from __future__ import annotations

import warnings
from pathlib import Path

from drgnet.data.readers import _io
from drgnet.data.readers._base import DatasetReader, _Entry, _lesion_indexes, _lesion_masks, _missing_images
from drgnet.labels import LESIONS, NUM_LESIONS

_FGADR_LESION_DIRS = {
    "MA": ("Microaneurysms_Masks",),
    # "Hemohedge" is how the release spells it; the others are for re-uploads that fixed it.
    "HE": ("Hemohedge_Masks", "Hemorrhage_Masks", "Haemorrhage_Masks"),
    "EX": ("HardExudate_Masks",),
    "SE": ("SoftExudate_Masks",),
}
_FGADR_EXTRA_DIRS = {"irma_mask": "IRMA_Masks", "neovascularization_mask": "Neovascularization_Masks"}
_FGADR_LABELS = "DR_Seg_Grading_Label.csv"


class FGADRReader(DatasetReader):
    """FGADR Seg-set: 1,842 photographs with ICDR grades and masks for all four lesions.

    ``root`` is the release folder or its ``Seg-set`` folder. Images are ``Original_Images/0001_2.png``;
    masks have the image's file name in ``Microaneurysms_Masks``, ``Hemohedge_Masks`` (sic),
    ``HardExudate_Masks`` and ``SoftExudate_Masks``; grades are in ``DR_Seg_Grading_Label.csv`` (no header,
    ``name,grade`` lines). IRMA and neovascularisation masks are not lesion channels here; their paths go to
    ``meta["irma_mask"]`` and ``meta["neovascularization_mask"]`` when present. FGADR has no official split.

    Args:
        skip_missing: Leave out grade rows whose image is missing (with a warning) instead of failing.
    """

    layout = "fgadr"
    title = "FGADR Seg-set"
    article = "an"
    default_source = "fgadr"

    def _scan(self) -> None:
        base = self._locate(self.root)
        images = _io.find_dir(base, "Original_Images") if base else None
        if base is None or not _io.has_images(images):
            raise self._not_this()
        paths = _io.list_images(images)
        grades, where = self._read_grades(base, {p.stem for p in paths}, self.skip_missing)
        indexes = _lesion_indexes([_io.find_dir(base, *_FGADR_LESION_DIRS[c]) for c in LESIONS], base)
        extras = {key: _io.find_dir(base, name) for key, name in _FGADR_EXTRA_DIRS.items()}
        extra_ix = {key: _io.FileIndex(d, _io.MASK_EXTENSIONS) for key, d in extras.items() if d is not None}
        entries = []
        for path in paths:
            mask_paths, known = _lesion_masks(indexes, [path.name] * NUM_LESIONS)
            meta: dict[str, object] = {}
            for key, ix in extra_ix.items():
                found = ix.find(path.name)
                if found is not None:
                    meta[key] = str(found)
            entries.append(
                _Entry(
                    name=path.stem,
                    path=path,
                    source=self.source,
                    grade=grades.get(path.stem),
                    mask_paths=mask_paths,
                    lesion_known=known,
                    meta=meta,
                )
            )
        ungraded = sum(e.grade is None for e in entries)
        if grades and ungraded:
            warnings.warn(f"{base / _FGADR_LABELS}: {ungraded} images have no grade row", stacklevel=2)
        self._set_entries(entries, where)

    def _read_grades(self, base: Path, stems: set[str], skip_missing: bool) -> tuple[dict[str, int], dict[str, str]]:
        labels = _io.find_file(base, _FGADR_LABELS)
        if labels is None:
            warnings.warn(f"{base}: no {_FGADR_LABELS}; the images have no grades", stacklevel=3)
            return {}, {}
        grades: dict[str, int] = {}
        where: dict[str, str] = {}
        missing = []
        for line, cells in _io.read_rows(labels):
            at = f"{labels}, line {line}"
            name = _io.strip_image_extension(cells[0])
            if len(cells) < 2:
                raise ValueError(f"{at}: expected 'image name,grade', got {','.join(cells)!r}")
            if line == 1 and name not in stems and not cells[1].lstrip("-").isdigit():
                continue  # a header row some re-uploads add
            grade = _io.parse_grade(cells[1], f"{at} ({name})")
            if name not in stems:
                missing.append(f"{at}: image {cells[0]!r} not found in {base / 'Original_Images'}")
                continue
            if name in grades:
                raise ValueError(f"{at}: image {name!r} is listed more than once (first at {where[name]})")
            grades[name] = int(grade)
            where[name] = at
        _missing_images(labels, missing, skip_missing)
        return grades, where

    @staticmethod
    def _locate(root: Path) -> Path | None:
        part = _io.find_dir(root, "Seg-set")
        if part is not None:
            return part
        if _io.find_dir(root, "Original_Images") and (
            _io.find_file(root, _FGADR_LABELS) or _io.find_dir(root, *_FGADR_LESION_DIRS["MA"])
        ):
            return root
        return None

    @classmethod
    def expected(cls, split: str | None = None) -> str:
        return (
            "'Seg-set/Original_Images' with images, masks of the same file names in "
            "'Seg-set/Microaneurysms_Masks', 'Hemohedge_Masks', 'HardExudate_Masks', 'SoftExudate_Masks' "
            f"and grades in 'Seg-set/{_FGADR_LABELS}'"
        )

    @classmethod
    def matches(cls, root: Path) -> bool:
        base = cls._locate(root)
        return base is not None and _io.has_images(_io.find_dir(base, "Original_Images"))
