"""DDR: the grading lists (``train.txt`` ...) and the lesion-segmentation part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drgnet.data.readers import _io
from drgnet.data.readers._base import DatasetReader, _Entry, _lesion_indexes, _lesion_masks, _missing_images
from drgnet.labels import GRADES, LESIONS, NUM_LESIONS

_DDR_SPLIT_DIRS = {"train": ("train",), "valid": ("valid", "val"), "test": ("test",)}
_DDR_UNGRADABLE = 5


def _ddr_grading_dir(root: Path) -> Path | None:
    part = _io.find_dir(root, "DR_grading")
    if part is not None:
        return part
    if any(_io.find_file(root, f"{s}.txt") for names in _DDR_SPLIT_DIRS.values() for s in names):
        return root
    return None


def _read_ddr_list(path: Path, *, include_ungradable: bool) -> list[tuple[int, str, int | None]]:
    """``(line, file name, grade)`` from a DDR list (``007-1789-100.jpg 2`` per line); grade 5 -> None."""
    out = []
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().rsplit(maxsplit=1)
        at = f"{path}, line {line_no}"
        if len(parts) != 2:
            raise ValueError(f"{at}: expected '<image file> <grade>', got {line.strip()!r}")
        grade = _io.parse_grade(parts[1], f"{at} ({parts[0]})", allowed=(*GRADES, _DDR_UNGRADABLE))
        if grade == _DDR_UNGRADABLE:
            if not include_ungradable:
                continue
            grade = None
        out.append((line_no, parts[0], grade))
    return out


class _DDRPart(DatasetReader):
    """What DDR's two parts share: the official splits and the source name."""

    splits = ("train", "valid", "test")
    default_source = "ddr"


class DDRGradingReader(_DDRPart):
    """DDR classification set: 13,673 photographs in official train / valid / test splits.

    ``root`` is the DDR folder or its ``DR_grading`` folder. ``DR_grading/train.txt`` lists
    ``007-1789-100.jpg 2`` per line; images are in ``DR_grading/train/``. Grade 5 marks an ungradable
    photograph: those are left out unless ``include_ungradable`` is set, in which case they come with grade
    None and ``meta["ungradable"] = True``. ``valid`` may be spelled ``val`` on disk.

    Args:
        include_ungradable: Keep grade-5 (ungradable) photographs, as grade None.
        skip_missing: Leave out list lines whose image is missing (with a warning) instead of failing.
    """

    layout = "ddr-grading"
    title = "DDR grading"

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        include_ungradable: bool = False,
        **options: Any,
    ) -> None:
        self.include_ungradable = include_ungradable
        super().__init__(root, split, **options)

    def _scan(self) -> None:
        base = _ddr_grading_dir(self.root)
        names = _DDR_SPLIT_DIRS[self.split]
        labels = _io.find_file(base, *(f"{n}.txt" for n in names)) if base else None
        images = _io.find_dir(base, *names) if base else None
        if labels is None or not _io.has_images(images):
            raise self._not_this()
        index = _io.FileIndex(images, _io.IMAGE_EXTENSIONS)
        entries, missing, where = [], [], {}
        for line, file_name, grade in _read_ddr_list(labels, include_ungradable=self.include_ungradable):
            at = f"{labels}, line {line}"
            path = index.find(file_name)
            if path is None:
                missing.append(f"{at}: image {file_name!r} not found in {images}")
                continue
            name = _io.strip_image_extension(file_name)
            where.setdefault(name, at)
            meta: dict[str, object] = {"split": self.split}
            if grade is None:
                meta["ungradable"] = True
            entries.append(_Entry(name=name, path=path, source=self.source, grade=grade, meta=meta))
        _missing_images(labels, missing, self.skip_missing, what="lines")
        self._set_entries(entries, where)

    @classmethod
    def expected(cls, split: str | None = None) -> str:
        s = split or "train"
        return f"'DR_grading/{s}.txt' ('<image file> <grade>' lines) and images in 'DR_grading/{s}/'"

    @classmethod
    def matches(cls, root: Path) -> bool:
        base = _ddr_grading_dir(root)
        if base is None:
            return False
        return any(
            _io.find_file(base, f"{n}.txt") and _io.has_images(_io.find_dir(base, n))
            for names in _DDR_SPLIT_DIRS.values()
            for n in names
        )


def _ddr_seg_dir(root: Path) -> Path | None:
    part = _io.find_dir(root, "lesion_segmentation")
    if part is not None:
        return part
    if any(_io.find_dir(root / n, "image") for names in _DDR_SPLIT_DIRS.values() for n in names):
        return root
    return None


class DDRSegmentationReader(_DDRPart):
    """DDR lesion-segmentation set: 757 photographs with masks for all four lesions.

    ``root`` is the DDR folder or its ``lesion_segmentation`` folder. Images are
    ``lesion_segmentation/train/image/007-1789-100.jpg``; masks are
    ``lesion_segmentation/train/label/{EX,HE,MA,SE}/007-1789-100.tif`` (some releases call ``label``
    ``segmentation label``, and ``valid`` ``val``). A missing mask file means the lesion is absent.

    When the grading lists of the same release are found next to it (``DR_grading/*.txt``), grades are
    looked up there by file name (``meta["grade_from"]`` names the list); otherwise grades are None.

    Args:
        grades_from_grading: Look grades up in the sibling ``DR_grading`` lists.
    """

    layout = "ddr-seg"
    title = "DDR lesion segmentation"

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        grades_from_grading: bool = True,
        **options: Any,
    ) -> None:
        self.grades_from_grading = grades_from_grading
        super().__init__(root, split, **options)

    def _scan(self) -> None:
        base = _ddr_seg_dir(self.root)
        split_dir = _io.find_dir(base, *_DDR_SPLIT_DIRS[self.split]) if base else None
        images = _io.find_dir(split_dir, "image", "images") if split_dir else None
        if base is None or split_dir is None or not _io.has_images(images):
            raise self._not_this()
        label_dir = _io.find_dir(split_dir, "label", "segmentation label", "labels")
        if label_dir is None:
            raise self._not_this(f"no masks: '{split_dir.name}/label' is missing")
        indexes = _lesion_indexes([_io.find_dir(label_dir, c) for c in LESIONS], label_dir)
        if all(ix is None for ix in indexes):
            raise self._not_this(f"no lesion folders EX, HE, MA, SE in {label_dir}")
        grades = self._grades(base) if self.grades_from_grading else {}
        entries = []
        for path in _io.list_images(images):
            mask_paths, known = _lesion_masks(indexes, [path.stem] * NUM_LESIONS)
            meta: dict[str, object] = {"split": self.split}
            grade, grade_from = grades.get(path.stem, (None, None))
            if grade_from is not None:
                meta["grade_from"] = grade_from
                if grade is None:
                    meta["ungradable"] = True
            entries.append(
                _Entry(
                    name=path.stem,
                    path=path,
                    source=self.source,
                    grade=grade,
                    mask_paths=mask_paths,
                    lesion_known=known,
                    meta=meta,
                )
            )
        self._set_entries(entries)

    @staticmethod
    def _grades(seg_base: Path) -> dict[str, tuple[int | None, str]]:
        grading = _io.find_dir(seg_base.parent, "DR_grading")
        if grading is None:
            return {}
        out: dict[str, tuple[int | None, str]] = {}
        for names in _DDR_SPLIT_DIRS.values():
            labels = _io.find_file(grading, *(f"{n}.txt" for n in names))
            if labels is None:
                continue
            for _, file_name, grade in _read_ddr_list(labels, include_ungradable=True):
                out.setdefault(_io.strip_image_extension(file_name), (grade, str(labels)))
        return out

    @classmethod
    def expected(cls, split: str | None = None) -> str:
        s = split or "train"
        return (
            f"'lesion_segmentation/{s}/image' with images and masks in "
            f"'lesion_segmentation/{s}/label/{{EX,HE,MA,SE}}/<image name>.tif'"
        )

    @classmethod
    def matches(cls, root: Path) -> bool:
        base = _ddr_seg_dir(root)
        if base is None:
            return False
        for names in _DDR_SPLIT_DIRS.values():
            split_dir = _io.find_dir(base, *names)
            if split_dir and _io.has_images(_io.find_dir(split_dir, "image", "images")):
                return True
        return False
