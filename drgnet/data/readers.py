"""Readers for the public diabetic-retinopathy datasets and for our synthetic cohorts.

Every reader is a lazy, indexable sequence of :class:`~drgnet.data.sample.Sample`: building one only reads
label files and lists folders; ``reader[i]`` loads the photograph (and its masks) from disk. ``reader.grades``
and ``reader.names`` are available without loading any image, e.g. for :func:`split_indices`.

Typical use::

    reader = open_dataset("/data/IDRiD/A. Segmentation", split="train")   # layout detected
    sample = reader[0]                                                     # Sample with (4, H, W) masks
    train, val, test = split_indices(open_dataset("/data/FGADR").grades)

Layouts (``LAYOUTS``): ``idrid-seg``, ``idrid-grading``, ``fgadr``, ``ddr-grading``, ``ddr-seg``, ``csv``
(EyePACS / APTOS style), ``synthetic`` (written by ``drgnet synth``) and ``folder`` (unlabelled photographs).

Masks follow one rule everywhere: when a source annotated a lesion for an image but has no mask file for it,
the lesion is absent from that image (known, all zeros). A lesion is unknown only when the source never
annotates it, or its whole mask folder is missing (a warning says so).
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, overload

import numpy as np

from drgnet.data._readers_io import (
    IMAGE_EXTENSIONS,
    MASK_EXTENSIONS,
    FileIndex,
    find_dir,
    find_file,
    has_images,
    list_images,
    parse_grade,
    pick_column,
    read_mask,
    read_rows,
    read_table,
    strip_image_extension,
)
from drgnet.data.sample import Sample
from drgnet.labels import GRADES, LESIONS, NUM_LESIONS

__all__ = [
    "LAYOUTS",
    "CSVReader",
    "DDRGradingReader",
    "DDRSegmentationReader",
    "DatasetReader",
    "FGADRReader",
    "IDRiDGradingReader",
    "IDRiDSegmentationReader",
    "ImageFolderReader",
    "SyntheticReader",
    "detect_layout",
    "open_dataset",
    "read_mask",
    "split_indices",
]

_NO_MASKS: tuple[Path | None, ...] = (None,) * NUM_LESIONS
_UNKNOWN: tuple[bool, ...] = (False,) * NUM_LESIONS
_SPLIT_ALIASES = {"training": "train", "val": "valid", "validation": "valid", "testing": "test"}


@dataclass(frozen=True)
class _Entry:
    """What a reader knows about one image before loading it."""

    name: str
    path: Path
    source: str
    grade: int | None = None
    mask_paths: tuple[Path | None, ...] = _NO_MASKS  # per lesion; None with known=True means "absent"
    lesion_known: tuple[bool, ...] = _UNKNOWN
    meta: Mapping[str, object] = field(default_factory=dict)


def _missing_images(label_file: Path, missing: list[str], skip: bool, what: str = "rows") -> None:
    """Fail on (or, with ``skip_missing``, warn about) label-file entries whose image is not on disk."""
    if not missing:
        return
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    if not skip:
        raise ValueError(f"{missing[0]}{more}; pass skip_missing=True to leave such {what} out")
    warnings.warn(
        f"{label_file}: skipped {len(missing)} {what} whose image is missing, first: {missing[0]}",
        stacklevel=3,
    )


def _check_unique(entries: list[_Entry], where: dict[str, str]) -> None:
    """Names must be unique within a reader; ``where`` maps a name to its first label-file line."""
    seen: set[str] = set()
    for e in entries:
        if e.name in seen:
            raise ValueError(f"{where.get(e.name, e.path)}: image {e.name!r} is listed more than once")
        seen.add(e.name)


class DatasetReader(Sequence[Sample]):
    """Base of every reader: a lazy sequence of :class:`Sample`.

    Subclasses find their files in ``__init__`` and hand a list of entries to ``_set_entries``; loading,
    mask assembly and size checks live here so every layout behaves the same.

    Attributes:
        root: The folder (or label file) the reader was opened on.
        split: The official split read, or None for sources without official splits.
        source: Source name given to every sample (``"idrid"``, ``"ddr"``, ...).
    """

    #: Name of the layout in ``LAYOUTS``.
    layout: ClassVar[str] = ""
    #: The dataset in words, for messages, and its article ("an FGADR ...").
    title: ClassVar[str] = ""
    article: ClassVar[str] = "a"
    #: Official splits, the default first; empty when the source has none.
    splits: ClassVar[tuple[str, ...]] = ()
    default_source: ClassVar[str] = ""

    def __init__(self, root: str | Path, split: str | None = None, *, source: str | None = None) -> None:
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise FileNotFoundError(f"{self.root}: no such file or folder")
        self.split = self._resolve_split(split)
        self.source = source or self.default_source
        self._entries: list[_Entry] = []

    # ------------------------------------------------------------------ per-layout hooks

    @classmethod
    def expected(cls, split: str | None = None) -> str:
        """What this layout expects to find under its root, in words, for error messages."""
        raise NotImplementedError

    @classmethod
    def matches(cls, root: Path) -> bool:
        """Cheap test (a few ``stat`` calls) whether ``root`` looks like this layout."""
        raise NotImplementedError

    def _not_this(self, detail: str = "") -> ValueError:
        extra = f" ({detail})" if detail else ""
        return ValueError(
            f"{self.root}: not {self.article} {self.title} folder{extra}: expected {self.expected(self.split)}"
        )

    @classmethod
    def _resolve_split(cls, split: str | None) -> str | None:
        if not cls.splits:
            if split in (None, "all"):
                return None
            raise ValueError(
                f"{cls.title} has no official {split!r} split; open it with split=None and divide it "
                "with split_indices(reader.grades)"
            )
        if split is None:
            return cls.splits[0]
        key = _SPLIT_ALIASES.get(split.strip().lower(), split.strip().lower())
        if key not in cls.splits:
            raise ValueError(f"{cls.title} has no split {split!r}; choose one of {', '.join(cls.splits)}")
        return key

    def _set_entries(self, entries: list[_Entry], where: dict[str, str] | None = None) -> None:
        _check_unique(entries, where or {})
        self._entries = entries

    # ------------------------------------------------------------------ sequence protocol

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        if isinstance(index, slice):
            return [self._load(self._entries[i]) for i in range(*index.indices(len(self)))]
        return self._load(self._entries[index])

    def __iter__(self) -> Iterator[Sample]:
        for entry in self._entries:
            yield self._load(entry)

    def __repr__(self) -> str:
        split = f", split={self.split!r}" if self.split else ""
        return f"{type(self).__name__}({str(self.root)!r}{split}, {len(self)} images)"

    # ------------------------------------------------------------------ label views (no image loading)

    @property
    def names(self) -> list[str]:
        """Image names, unique within this reader, in index order."""
        return [e.name for e in self._entries]

    @property
    def grades(self) -> list[int | None]:
        """ICDR grade of each image (None where the source has none), in index order."""
        return [e.grade for e in self._entries]

    @property
    def paths(self) -> list[Path]:
        """Image file of each entry, in index order."""
        return [e.path for e in self._entries]

    def subset(self, indices: Iterable[int]) -> DatasetReader:
        """A reader over the given entries only (e.g. one part of :func:`split_indices`), in that order."""
        out = copy.copy(self)
        out._entries = [self._entries[i] for i in indices]
        return out

    # ------------------------------------------------------------------ loading

    def _load(self, entry: _Entry) -> Sample:
        # Imported here: preprocess is a sibling module that owns every photograph decode.
        from drgnet.data.preprocess import load_rgb

        image = load_rgb(entry.path)
        masks = None
        if any(entry.lesion_known):
            h, w = image.shape[:2]
            masks = np.zeros((NUM_LESIONS, h, w), np.uint8)
            for i, (known, mask_path) in enumerate(zip(entry.lesion_known, entry.mask_paths, strict=True)):
                if not known or mask_path is None:
                    continue
                mask = read_mask(mask_path)
                if mask.shape != (h, w):
                    raise ValueError(
                        f"{mask_path}: the {LESIONS[i]} mask is {mask.shape[1]}x{mask.shape[0]} pixels but "
                        f"its image {entry.path} is {w}x{h}; a mask must have its image's size"
                    )
                masks[i] = mask
        return Sample(
            image=image,
            name=entry.name,
            source=entry.source,
            grade=entry.grade,
            masks=masks,
            lesion_known=entry.lesion_known,
            ignore=self._ignore(image, entry),
            path=entry.path,
            meta=dict(entry.meta),
        )

    def _ignore(self, image: np.ndarray, entry: _Entry) -> np.ndarray | None:
        """Pixels not to learn from; None here: preprocessing adds the field-of-view region later."""
        return None


def _lesion_masks(
    indexes: Sequence[FileIndex | None], keys: Sequence[str]
) -> tuple[tuple[Path | None, ...], tuple[bool, ...]]:
    """Mask files of one image, looked up per lesion by ``keys``; a missing folder (None) means unknown."""
    paths = tuple(ix.find(key) if ix is not None else None for ix, key in zip(indexes, keys, strict=True))
    known = tuple(ix is not None for ix in indexes)
    return paths, known


def _subdir(base: Path | None, *parts: str) -> Path | None:
    """``base/part1/part2/...`` with each part matched as :func:`find_dir` does."""
    for part in parts:
        if base is None:
            return None
        base = find_dir(base, part)
    return base


def _lesion_indexes(
    folders: Sequence[Path | None], owner: Path, extensions: Iterable[str] = MASK_EXTENSIONS
) -> list[FileIndex | None]:
    """Index each lesion folder; warn once about folders that are missing (those lesions become unknown)."""
    out: list[FileIndex | None] = []
    missing = []
    for code, folder in zip(LESIONS, folders, strict=True):
        if folder is None or not folder.is_dir():
            out.append(None)
            missing.append(code)
        else:
            out.append(FileIndex(folder, extensions))
    if missing:
        warnings.warn(
            f"{owner}: no mask folder for {', '.join(missing)}; those lesions are treated as not annotated",
            stacklevel=4,
        )
    return out


# ============================================================================================ IDRiD

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

    @staticmethod
    def _locate(root: Path) -> Path | None:
        raise NotImplementedError

    @classmethod
    def matches(cls, root: Path) -> bool:
        base = cls._locate(root)
        return base is not None and any(
            has_images(_subdir(base, "1. Original Images", s)) for s in _IDRID_SETS.values()
        )


class IDRiDSegmentationReader(_IDRiDPart):
    """IDRiD part A (lesion segmentation): 54 training and 27 test photographs, all four lesions, no grades.

    ``root`` is the dataset folder or its ``A. Segmentation`` folder. Images are
    ``1. Original Images/a. Training Set/IDRiD_01.jpg``; masks are
    ``2. All Segmentation Groundtruths/a. Training Set/1. Microaneurysms/IDRiD_01_MA.tif`` (and
    ``2. Haemorrhages/.._HE``, ``3. Hard Exudates/.._EX``, ``4. Soft Exudates/.._SE``). IDRiD annotated every
    lesion in every image, so a missing mask file means the lesion is absent. The optic disc is not read.
    """

    layout = "idrid-seg"
    title = "IDRiD segmentation"
    article = "an"
    splits = ("train", "test")
    default_source = "idrid"

    def __init__(self, root: str | Path, split: str | None = None, *, source: str | None = None) -> None:
        super().__init__(root, split, source=source)
        base = self._locate(self.root)
        set_name = _IDRID_SETS[self.split]
        images = _subdir(base, "1. Original Images", set_name)
        if base is None or not has_images(images):
            raise self._not_this()
        truth = _subdir(base, "2. All Segmentation Groundtruths", set_name)
        if truth is None:
            raise self._not_this(f"no masks: '2. All Segmentation Groundtruths/{set_name}' is missing")
        folders = [find_dir(truth, _IDRID_LESION_DIRS[c], *_IDRID_LESION_ALIASES.get(c, ())) for c in LESIONS]
        indexes = _lesion_indexes(folders, truth)
        if all(ix is None for ix in indexes):
            raise self._not_this(f"no lesion folders in {truth}")
        entries = []
        for path in list_images(images):
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

    @staticmethod
    def _locate(root: Path) -> Path | None:
        part = find_dir(root, "A. Segmentation")
        if part is not None:
            return part
        if find_dir(root, "1. Original Images") and find_dir(root, "2. All Segmentation Groundtruths"):
            return root
        return None

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
    title = "IDRiD disease grading"
    article = "an"
    splits = ("train", "test")
    default_source = "idrid"

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        source: str | None = None,
        skip_missing: bool = False,
    ) -> None:
        super().__init__(root, split, source=source)
        base = self._locate(self.root)
        images = _subdir(base, "1. Original Images", _IDRID_SETS[self.split])
        if base is None or not has_images(images):
            raise self._not_this()
        labels = self._label_file(_subdir(base, "2. Groundtruths"), self.split)
        if labels is None:
            raise self._not_this(f"no label file '2. Groundtruths/{_IDRID_LABEL_FILES[self.split]}'")
        columns, records = read_table(labels)
        name_col = pick_column(columns, None, ["Image name"])
        grade_col = pick_column(columns, None, ["Retinopathy grade"])
        edema_col = pick_column(columns, None, ["Risk of macular edema"])
        if name_col is None or grade_col is None:
            raise ValueError(
                f"{labels}: expected columns 'Image name' and 'Retinopathy grade', found: {', '.join(columns)}"
            )
        index = FileIndex(images, IMAGE_EXTENSIONS)
        entries, missing, where = [], [], {}
        for line, row in records:
            at = f"{labels}, line {line}"
            name = strip_image_extension(row[name_col])
            if not name:
                raise ValueError(f"{at}: the image name is empty")
            grade = parse_grade(row[grade_col], f"{at} ({name})")
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
        _missing_images(labels, missing, skip_missing)
        self._set_entries(entries, where)

    @staticmethod
    def _locate(root: Path) -> Path | None:
        part = find_dir(root, "B. Disease Grading")
        if part is not None:
            return part
        if find_dir(root, "1. Original Images") and find_dir(root, "2. Groundtruths"):
            return root
        return None

    @staticmethod
    def _label_file(folder: Path | None, split: str) -> Path | None:
        if folder is None:
            return None
        exact = find_file(folder, _IDRID_LABEL_FILES[split])
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


# ============================================================================================ FGADR

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

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        source: str | None = None,
        skip_missing: bool = False,
    ) -> None:
        super().__init__(root, split, source=source)
        base = self._locate(self.root)
        images = find_dir(base, "Original_Images") if base else None
        if base is None or not has_images(images):
            raise self._not_this()
        paths = list_images(images)
        grades, where = self._read_grades(base, {p.stem for p in paths}, skip_missing)
        indexes = _lesion_indexes([find_dir(base, *_FGADR_LESION_DIRS[c]) for c in LESIONS], base)
        extras = {key: find_dir(base, name) for key, name in _FGADR_EXTRA_DIRS.items()}
        extra_ix = {key: FileIndex(d, MASK_EXTENSIONS) for key, d in extras.items() if d is not None}
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
        labels = find_file(base, _FGADR_LABELS)
        if labels is None:
            warnings.warn(f"{base}: no {_FGADR_LABELS}; the images have no grades", stacklevel=3)
            return {}, {}
        grades: dict[str, int] = {}
        where: dict[str, str] = {}
        missing = []
        for line, cells in read_rows(labels):
            at = f"{labels}, line {line}"
            name = strip_image_extension(cells[0])
            if len(cells) < 2:
                raise ValueError(f"{at}: expected 'image name,grade', got {','.join(cells)!r}")
            if line == 1 and name not in stems and not cells[1].lstrip("-").isdigit():
                continue  # a header row some re-uploads add
            grade = parse_grade(cells[1], f"{at} ({name})")
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
        part = find_dir(root, "Seg-set")
        if part is not None:
            return part
        if find_dir(root, "Original_Images") and (
            find_file(root, _FGADR_LABELS) or find_dir(root, *_FGADR_LESION_DIRS["MA"])
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
        return base is not None and has_images(find_dir(base, "Original_Images"))


# ============================================================================================ DDR

_DDR_SPLIT_DIRS = {"train": ("train",), "valid": ("valid", "val"), "test": ("test",)}
_DDR_UNGRADABLE = 5


def _ddr_grading_dir(root: Path) -> Path | None:
    part = find_dir(root, "DR_grading")
    if part is not None:
        return part
    if any(find_file(root, f"{s}.txt") for names in _DDR_SPLIT_DIRS.values() for s in names):
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
        grade = parse_grade(parts[1], f"{at} ({parts[0]})", allowed=(*GRADES, _DDR_UNGRADABLE))
        if grade == _DDR_UNGRADABLE:
            if not include_ungradable:
                continue
            grade = None
        out.append((line_no, parts[0], grade))
    return out


class DDRGradingReader(DatasetReader):
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
    splits = ("train", "valid", "test")
    default_source = "ddr"

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        source: str | None = None,
        include_ungradable: bool = False,
        skip_missing: bool = False,
    ) -> None:
        super().__init__(root, split, source=source)
        base = _ddr_grading_dir(self.root)
        names = _DDR_SPLIT_DIRS[self.split]
        labels = find_file(base, *(f"{n}.txt" for n in names)) if base else None
        images = find_dir(base, *names) if base else None
        if labels is None or not has_images(images):
            raise self._not_this()
        index = FileIndex(images, IMAGE_EXTENSIONS)
        entries, missing, where = [], [], {}
        for line, file_name, grade in _read_ddr_list(labels, include_ungradable=include_ungradable):
            at = f"{labels}, line {line}"
            path = index.find(file_name)
            if path is None:
                missing.append(f"{at}: image {file_name!r} not found in {images}")
                continue
            name = strip_image_extension(file_name)
            where.setdefault(name, at)
            meta: dict[str, object] = {"split": self.split}
            if grade is None:
                meta["ungradable"] = True
            entries.append(_Entry(name=name, path=path, source=self.source, grade=grade, meta=meta))
        _missing_images(labels, missing, skip_missing, what="lines")
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
            find_file(base, f"{n}.txt") and has_images(find_dir(base, n))
            for names in _DDR_SPLIT_DIRS.values()
            for n in names
        )


def _ddr_seg_dir(root: Path) -> Path | None:
    part = find_dir(root, "lesion_segmentation")
    if part is not None:
        return part
    if any(find_dir(root / n, "image") for names in _DDR_SPLIT_DIRS.values() for n in names):
        return root
    return None


class DDRSegmentationReader(DatasetReader):
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
    splits = ("train", "valid", "test")
    default_source = "ddr"

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        source: str | None = None,
        grades_from_grading: bool = True,
    ) -> None:
        super().__init__(root, split, source=source)
        base = _ddr_seg_dir(self.root)
        split_dir = find_dir(base, *_DDR_SPLIT_DIRS[self.split]) if base else None
        images = find_dir(split_dir, "image", "images") if split_dir else None
        if base is None or split_dir is None or not has_images(images):
            raise self._not_this()
        label_dir = find_dir(split_dir, "label", "segmentation label", "labels")
        if label_dir is None:
            raise self._not_this(f"no masks: '{split_dir.name}/label' is missing")
        indexes = _lesion_indexes([find_dir(label_dir, c) for c in LESIONS], label_dir)
        if all(ix is None for ix in indexes):
            raise self._not_this(f"no lesion folders EX, HE, MA, SE in {label_dir}")
        grades = self._grades(base) if grades_from_grading else {}
        entries = []
        for path in list_images(images):
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
        grading = find_dir(seg_base.parent, "DR_grading")
        if grading is None:
            return {}
        out: dict[str, tuple[int | None, str]] = {}
        for names in _DDR_SPLIT_DIRS.values():
            labels = find_file(grading, *(f"{n}.txt" for n in names))
            if labels is None:
                continue
            for _, file_name, grade in _read_ddr_list(labels, include_ungradable=True):
                out.setdefault(strip_image_extension(file_name), (grade, str(labels)))
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
            split_dir = find_dir(base, *names)
            if split_dir and has_images(find_dir(split_dir, "image", "images")):
                return True
        return False


# ============================================================================================ CSV

#: Column names recognised, in order of preference, when none is given.
ID_COLUMNS: tuple[str, ...] = ("image", "id_code", "image_id", "Image name", "filename", "path")
GRADE_COLUMNS: tuple[str, ...] = ("level", "diagnosis", "grade", "Retinopathy grade", "label", "dr_grade")
_TABLE_SUFFIXES = (".csv", ".tsv")


class CSVReader(DatasetReader):
    """A label table plus a folder of images, as EyePACS (``trainLabels.csv`` + ``train/``) and APTOS
    (``train.csv`` + ``train_images/``) ship them.

    ``root`` is the CSV file or the folder holding it. With several CSVs in the folder, ``split`` picks the
    one whose name starts with it (``train`` -> ``train.csv`` / ``trainLabels.csv``). The image-id column is
    found among ``image, id_code, image_id, Image name, filename, path`` and the grade column among
    ``level, diagnosis, grade, Retinopathy grade, label, dr_grade`` unless named; without a grade column
    every grade is None, and an empty grade cell is None too. Ids may lack an extension (``.jpeg``, ``.jpg``,
    ``.png``, ``.tif`` are tried). Other columns go to ``meta`` as text.

    Args:
        images_dir: Folder of the images. By default the first of: the CSV's folder, ``<stem>/``,
            ``<stem>_images/``, ``images/`` (with ``trainLabels`` also ``train/``) that holds the first ids.
        id_column: Name of the image-id column.
        grade_column: Name of the grade column.
        skip_missing: Leave out rows whose image is missing (with a warning) instead of failing.
        source: Source name; by default the CSV's folder name in lower case.
    """

    layout = "csv"
    title = "image-table (CSV)"

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        images_dir: str | Path | None = None,
        id_column: str | None = None,
        grade_column: str | None = None,
        skip_missing: bool = False,
        source: str | None = None,
    ) -> None:
        super().__init__(root, split, source=source)
        self.table = self._pick_table(self.root, split)
        self.source = source or self.table.parent.name.lower() or "csv"
        columns, records = read_table(self.table)
        id_col = pick_column(columns, id_column, ID_COLUMNS)
        if id_col is None:
            raise ValueError(
                f"{self.table}: no image-id column; expected one of {', '.join(ID_COLUMNS)} "
                f"(columns: {', '.join(columns)}); pass id_column="
            )
        grade_col = pick_column(columns, grade_column, GRADE_COLUMNS)
        ids = [(line, row[id_col]) for line, row in records]
        for line, image_id in ids:
            if not image_id:
                raise ValueError(f"{self.table}, line {line}: the image id is empty")
        folder = self._image_folder(images_dir, [i for _, i in ids[:20]])
        index = FileIndex(folder, IMAGE_EXTENSIONS) if folder.is_dir() else None
        entries, missing, where = [], [], {}
        for line, row in records:
            at = f"{self.table}, line {line}"
            image_id = row[id_col]
            grade = None
            if grade_col is not None:
                grade = parse_grade(row[grade_col], f"{at} ({image_id})", allow_empty=True)
            path = self._resolve(folder, index, image_id)
            if path is None:
                missing.append(f"{at}: image {image_id!r} not found in {folder}")
                continue
            name = strip_image_extension(image_id)
            where.setdefault(name, at)
            meta = {k: v for k, v in row.items() if k not in (id_col, grade_col)}
            entries.append(_Entry(name=name, path=path, source=self.source, grade=grade, meta=meta))
        _missing_images(self.table, missing, skip_missing)
        self.images_dir = folder
        self._set_entries(entries, where)

    @classmethod
    def _resolve_split(cls, split: str | None) -> str | None:
        return split  # only chooses among several tables; see _pick_table

    def _pick_table(self, root: Path, split: str | None) -> Path:
        if root.is_file():
            if root.suffix.lower() not in (*_TABLE_SUFFIXES, ".txt"):
                raise ValueError(f"{root}: not a CSV label table: expected {self.expected()}")
            return root
        tables = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in _TABLE_SUFFIXES)
        tables = [p for p in tables if not p.name.startswith(".")]
        if not tables:
            raise self._not_this()
        if len(tables) == 1 and split is None:
            return tables[0]
        want = (split or "train").lower()
        hits = [p for p in tables if p.stem.lower().startswith(want)]
        if len(hits) == 1:
            return hits[0]
        names = ", ".join(p.name for p in tables)
        raise ValueError(
            f"{root}: several label tables ({names}) and not exactly one starting with {want!r}; "
            "open the CSV file itself"
        )

    def _image_folder(self, images_dir: str | Path | None, probe: list[str]) -> Path:
        here = self.table.parent
        if images_dir is not None:
            folder = Path(images_dir).expanduser()
            if not folder.is_absolute() and not folder.exists():
                folder = here / folder
            if not folder.is_dir():
                raise ValueError(f"{images_dir}: images_dir is not a folder")
            return folder
        stem = self.table.stem
        short = stem[: -len("labels")].rstrip("_-") if stem.lower().endswith("labels") else stem
        candidates = [here]
        for name in dict.fromkeys([stem, short, f"{short}_images", f"{stem}_images", "images"]):
            if name and (here / name).is_dir():
                candidates.append(here / name)
        # The folder holding most of the first ids wins, so one missing image does not hide the right one.
        best, best_hits = None, 0
        for folder in candidates:
            index = FileIndex(folder, IMAGE_EXTENSIONS)
            hits = sum(self._resolve(folder, index, i) is not None for i in probe)
            if hits > best_hits:
                best, best_hits = folder, hits
        if best is not None:
            return best
        tried = ", ".join(str(c) for c in candidates)
        raise ValueError(
            f"{self.table}: cannot find the images it lists (first id {probe[0] if probe else '?'!r}); "
            f"looked in {tried}; pass images_dir="
        )

    @staticmethod
    def _resolve(folder: Path, index: FileIndex | None, image_id: str) -> Path | None:
        if index is not None and "/" not in image_id and "\\" not in image_id:
            return index.find(image_id)
        candidate = Path(image_id)
        if not candidate.is_absolute():
            candidate = folder / candidate
        if candidate.is_file():
            return candidate
        for ext in IMAGE_EXTENSIONS:
            for variant in (ext, ext.upper()):
                p = candidate.with_name(candidate.name + variant)
                if p.is_file():
                    return p
        return None

    @classmethod
    def expected(cls, split: str | None = None) -> str:
        return (
            "a CSV file (or a folder with one) whose columns include an image id "
            f"({', '.join(ID_COLUMNS)}) and optionally a grade ({', '.join(GRADE_COLUMNS)}), "
            "next to or above a folder of those images"
        )

    @classmethod
    def matches(cls, root: Path) -> bool:
        if root.is_file():
            tables = [root] if root.suffix.lower() in _TABLE_SUFFIXES else []
        else:
            tables = sorted(p for p in root.glob("*") if p.suffix.lower() in _TABLE_SUFFIXES and p.is_file())
        for table in tables:
            try:
                rows = read_rows(table)
            except OSError:
                continue
            if rows and pick_column(rows[0][1], None, ID_COLUMNS) is not None:
                return True
        return False


# ============================================================================================ synthetic

_SYN_IMAGES = "1. Original Images"
_SYN_MASKS = "2. All Segmentation Groundtruths"
_SYN_GRADES = "grades.csv"
_SYN_MANIFEST = "manifest.json"
_SYN_GENERATOR = "drgnet.synthetic"


class SyntheticReader(DatasetReader):
    """A cohort written by ``drgnet synth`` (:mod:`drgnet.data.synthetic`).

    Layout: ``1. Original Images/SYN_00000.jpg``; masks
    ``2. All Segmentation Groundtruths/1. Microaneurysms/SYN_00000_MA.png`` (and ``2. Haemorrhages``,
    ``3. Hard Exudates``, ``4. Soft Exudates``), written for every image; ``grades.csv`` with columns
    ``Image name, Retinopathy grade, style, seed, findings``; ``manifest.json``. Every sample's source is
    ``synthetic:<style>``; ``style``, ``seed`` (int) and ``findings`` go to ``meta``. The generator's
    manifest is available as ``reader.manifest``.

    Args:
        skip_missing: Leave out rows whose image is missing (with a warning) instead of failing.
    """

    layout = "synthetic"
    title = "synthetic cohort"
    default_source = "synthetic"

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        source: str | None = None,
        skip_missing: bool = False,
    ) -> None:
        super().__init__(root, split, source=source)
        images = self.root / _SYN_IMAGES
        labels = self.root / _SYN_GRADES
        if not has_images(images) or not labels.is_file():
            raise self._not_this()
        self.manifest = self._read_manifest(self.root / _SYN_MANIFEST)
        default_style = self.manifest.get("style") if isinstance(self.manifest.get("style"), str) else None
        columns, records = read_table(labels)
        if "Image name" not in columns or "Retinopathy grade" not in columns:
            raise ValueError(
                f"{labels}: expected columns 'Image name' and 'Retinopathy grade', found: {', '.join(columns)}"
            )
        masks = self.root / _SYN_MASKS
        indexes = _lesion_indexes([masks / _IDRID_LESION_DIRS[c] if masks.is_dir() else None for c in LESIONS], masks)
        index = FileIndex(images, IMAGE_EXTENSIONS)
        entries, missing, where = [], [], {}
        for line, row in records:
            at = f"{labels}, line {line}"
            name = strip_image_extension(row["Image name"])
            if not name:
                raise ValueError(f"{at}: the image name is empty")
            grade = parse_grade(row["Retinopathy grade"], f"{at} ({name})")
            path = index.find(name)
            if path is None:
                missing.append(f"{at}: image {name!r} not found in {images}")
                continue
            meta: dict[str, object] = {k: v for k, v in row.items() if k not in ("Image name", "Retinopathy grade")}
            if "seed" in meta and str(meta["seed"]).lstrip("-").isdigit():
                meta["seed"] = int(str(meta["seed"]))
            style = str(meta.get("style") or default_style or "")
            mask_paths, known = _lesion_masks(indexes, [f"{name}_{c}" for c in LESIONS])
            where.setdefault(name, at)
            entries.append(
                _Entry(
                    name=name,
                    path=path,
                    source=f"{self.source}:{style}" if style else self.source,
                    grade=grade,
                    mask_paths=mask_paths,
                    lesion_known=known,
                    meta=meta,
                )
            )
        _missing_images(labels, missing, skip_missing)
        self._set_entries(entries, where)

    @staticmethod
    def _read_manifest(path: Path) -> dict[str, Any]:
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        return data if isinstance(data, dict) else {}

    @classmethod
    def expected(cls, split: str | None = None) -> str:
        return f"'{_SYN_IMAGES}' with images, '{_SYN_MASKS}/1. Microaneurysms' etc. and '{_SYN_GRADES}'"

    @classmethod
    def matches(cls, root: Path) -> bool:
        if not root.is_dir():
            return False
        manifest = root / _SYN_MANIFEST
        if manifest.is_file():
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict) and data.get("generator") == _SYN_GENERATOR:
                return True
        # Without a manifest: our file names, and not IDRiD (which nests images in set folders).
        return (root / _SYN_GRADES).is_file() and has_images(root / _SYN_IMAGES) and (root / _SYN_MASKS).is_dir()


class ImageFolderReader(DatasetReader):
    """Unlabelled photographs: every image file in a folder and its sub-folders (e.g. a new clinic's export).

    Names are the paths relative to the folder, without extension and with ``/`` kept, so two cameras' ``001.jpg``
    in different sub-folders stay distinct. Samples have no grade and no masks.
    """

    layout = "folder"
    title = "folder of photographs"
    default_source = "folder"

    def __init__(self, root: str | Path, split: str | None = None, *, source: str | None = None) -> None:
        super().__init__(root, split, source=source)
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


# ============================================================================================ factory

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


# ============================================================================================ splits


def split_indices(
    grades: Sequence[int | None],
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> tuple[list[int], list[int], list[int]]:
    """Divide indices into train / validation / test, stratified by grade, for sources without official
    splits.

    Within each grade (None counts as its own group) indices are shuffled with ``seed`` and cut by
    ``fractions``; the places that rounding leaves over go to whichever part is furthest behind its overall
    share, so both each grade and the totals stay close to the fractions. The same inputs always give the
    same split.

    Args:
        grades: One grade per image, e.g. ``reader.grades``.
        fractions: Shares of train, validation and test; non-negative, summing to 1.
        seed: Random seed of the shuffle.

    Returns:
        Three sorted, disjoint lists of indices that together cover ``range(len(grades))``.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative shares summing to 1, got {fractions}")
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(grades):
        groups.setdefault(-1 if g is None else int(g), []).append(i)
    rng = np.random.default_rng(seed)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    assigned = [0, 0, 0]
    target = [0.0, 0.0, 0.0]
    for key in sorted(groups):
        idx = list(rng.permutation(groups[key]))
        ideal = [len(idx) * f for f in fractions]
        counts = [math.floor(x) for x in ideal]
        target = [t + x for t, x in zip(target, ideal, strict=True)]
        for _ in range(len(idx) - sum(counts)):
            behind = [target[k] - assigned[k] - counts[k] if fractions[k] > 0 else -math.inf for k in range(3)]
            counts[behind.index(max(behind))] += 1
        start = 0
        for k in range(3):
            parts[k].extend(int(i) for i in idx[start : start + counts[k]])
            start += counts[k]
            assigned[k] += counts[k]
    return sorted(parts[0]), sorted(parts[1]), sorted(parts[2])
