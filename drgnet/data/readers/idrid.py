"""IDRiD: the segmentation part (A.) with lesion masks and the grading part (B.) with a label CSV."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from drgnet.data.readers import _io
from drgnet.data.readers._base import DatasetReader, _Entry, _lesion_indexes, _lesion_masks, _missing_images, _subdir
from drgnet.labels import LESIONS

_IDRID_SETS = {"train": "a. Training Set", "test": "b. Testing Set"}
_IDRID_LESION_DIRS = {
    "MA": "1. Microaneurysms",
    "HE": "2. Haemorrhages",
    "EX": "3. Hard Exudates",
    "SE": "4. Soft Exudates",
}
_IDRID_LESION_ALIASES = {"HE": ("2. Hemorrhages",)}


class _IDRiDPart(DatasetReader):
    """What the two IDRiD parts share: a located part folder whose images sit in per-set sub-folders."""

    #: The part's folder in the release, and its ground-truth folder (with ``1. Original Images`` beside it).
    splits = ("train", "test")
    default_source = "idrid"
    _part: ClassVar[str] = ""
    _truth: ClassVar[str] = ""

    @classmethod
    def _locate(cls, root: Path) -> Path | None:
        """The part folder: ``root/<part>``, or ``root`` itself when it is one."""
        part = _io.find_dir(root, cls._part)
        if part is not None:
            return part
        if _io.find_dir(root, "1. Original Images") and _io.find_dir(root, cls._truth):
            return root
        return None

    @classmethod
    def matches(cls, root: Path) -> bool:
        base = cls._locate(root)
        return base is not None and any(
            _io.has_images(_subdir(base, "1. Original Images", s)) for s in _IDRID_SETS.values()
        )

    def _part_and_images(self) -> tuple[Path, Path]:
        """The part folder and the split's image folder; a folder without them is not this layout."""
        base = self._locate(self.root)
        images = _subdir(base, "1. Original Images", _IDRID_SETS[self.split])
        if base is None or images is None or not _io.has_images(images):
            raise self._not_this()
        return base, images


class IDRiDSegmentationReader(_IDRiDPart):
    """IDRiD part A (lesion segmentation): 54 training and 27 test photographs, all four lesions, no grades.

    ``root`` is the dataset folder or its ``A. Segmentation`` folder. Images are
    ``1. Original Images/a. Training Set/IDRiD_01.jpg``; masks are
    ``2. All Segmentation Groundtruths/a. Training Set/1. Microaneurysms/IDRiD_01_MA.tif`` (and
    ``2. Haemorrhages/.._HE``, ``3. Hard Exudates/.._EX``, ``4. Soft Exudates/.._SE``). IDRiD annotated every
    lesion in every image, so a missing mask file means the lesion is absent. The optic disc is not read.
    """

    layout = "idrid-seg"
    _part = "A. Segmentation"
    _truth = "2. All Segmentation Groundtruths"
    title = "IDRiD segmentation"
    article = "an"

    def _scan(self) -> None:
        base, images = self._part_and_images()
        set_name = _IDRID_SETS[self.split]
        truth = _subdir(base, self._truth, set_name)
        if truth is None:
            raise self._not_this(f"no masks: '{self._truth}/{set_name}' is missing")
        folders = [_io.find_dir(truth, _IDRID_LESION_DIRS[c], *_IDRID_LESION_ALIASES.get(c, ())) for c in LESIONS]
        indexes = _lesion_indexes(folders, truth)
        if all(ix is None for ix in indexes):
            raise self._not_this(f"no lesion folders in {truth}")
        entries = []
        for path in _io.list_images(images):
            mask_paths, known = _lesion_masks(indexes, [f"{path.stem}_{c}" for c in LESIONS])
            entries.append(
                _Entry(
                    name=path.stem,
                    path=path,
                    source=self.source,
                    mask_paths=mask_paths,
                    lesion_known=known,
                    meta={"split": self.split},
                )
            )
        self._set_entries(entries)

    @classmethod
    def expected(cls, split: str | None = None) -> str:
        s = _IDRID_SETS[split or "train"]
        return (
            f"'A. Segmentation/1. Original Images/{s}' with images and lesion masks in "
            f"'A. Segmentation/2. All Segmentation Groundtruths/{s}/1. Microaneurysms' (IDRiD_01_MA.tif, ...)"
        )


_IDRID_LABEL_FILES = {
    "train": "a. IDRiD_Disease Grading_Training Labels.csv",
    "test": "b. IDRiD_Disease Grading_Testing Labels.csv",
}


class IDRiDGradingReader(_IDRiDPart):
    """IDRiD part B (disease grading): 413 training and 103 test photographs with ICDR grades.

    ``root`` is the dataset folder or its ``B. Disease Grading`` folder. Images are
    ``1. Original Images/a. Training Set/IDRiD_001.jpg``; grades come from
    ``2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv`` (columns ``Image name``,
    ``Retinopathy grade``, ``Risk of macular edema``). The macular-edema risk goes to
    ``meta["macular_edema_risk"]``. Train and test names overlap (both have ``IDRiD_001``): they are
    different photographs, so never pool the two splits by name.

    Args:
        skip_missing: Leave out label rows whose image is missing (with a warning) instead of failing.
    """

    layout = "idrid-grading"
    _part = "B. Disease Grading"
    _truth = "2. Groundtruths"
    title = "IDRiD disease grading"
    article = "an"

    def _scan(self) -> None:
        base, images = self._part_and_images()
        labels = self._label_file(_subdir(base, self._truth), self.split)
        if labels is None:
            raise self._not_this(f"no label file '2. Groundtruths/{_IDRID_LABEL_FILES[self.split]}'")
        columns, records = _io.read_table(labels)
        name_col = _io.pick_column(columns, None, ["Image name"])
        grade_col = _io.pick_column(columns, None, ["Retinopathy grade"])
        edema_col = _io.pick_column(columns, None, ["Risk of macular edema"])
        if name_col is None or grade_col is None:
            raise ValueError(
                f"{labels}: expected columns 'Image name' and 'Retinopathy grade', found: {', '.join(columns)}"
            )
        index = _io.FileIndex(images, _io.IMAGE_EXTENSIONS)
        entries, missing, where = [], [], {}
        for line, row in records:
            at = f"{labels}, line {line}"
            name = _io.strip_image_extension(row[name_col])
            if not name:
                raise ValueError(f"{at}: the image name is empty")
            grade = _io.parse_grade(row[grade_col], f"{at} ({name})")
            path = index.find(name)
            if path is None:
                missing.append(f"{at}: image {name!r} not found in {images}")
                continue
            meta: dict[str, object] = {"split": self.split}
            if edema_col is not None:
                risk = row[edema_col]
                meta["macular_edema_risk"] = int(risk) if risk.isdigit() else (risk or None)
            where.setdefault(name, at)
            entries.append(_Entry(name=name, path=path, source=self.source, grade=grade, meta=meta))
        _missing_images(labels, missing, self.skip_missing)
        self._set_entries(entries, where)

    @staticmethod
    def _label_file(folder: Path | None, split: str) -> Path | None:
        if folder is None:
            return None
        exact = _io.find_file(folder, _IDRID_LABEL_FILES[split])
        if exact is not None:
            return exact
        # Re-uploads shorten the name; any CSV naming the right set will do.
        word = "training" if split == "train" else "testing"
        hits = sorted(p for p in folder.glob("*.csv") if word in p.name.lower())
        return hits[0] if len(hits) == 1 else None

    @classmethod
    def expected(cls, split: str | None = None) -> str:
        s = split or "train"
        return (
            f"'B. Disease Grading/1. Original Images/{_IDRID_SETS[s]}' with images and "
            f"'B. Disease Grading/2. Groundtruths/{_IDRID_LABEL_FILES[s]}'"
        )
