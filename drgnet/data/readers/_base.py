"""The reader base class and what every dataset layout shares: entries, mask lookup, duplicate checks."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, overload

import numpy as np

from drgnet.data import preprocess
from drgnet.data.readers._io import (
    MASK_EXTENSIONS,
    FileIndex,
    find_dir,
    read_mask,
)
from drgnet.data.sample import Sample
from drgnet.labels import LESIONS, NUM_LESIONS

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

    Subclasses find their files in ``_scan`` and hand a list of entries to ``_set_entries``; loading,
    mask assembly and size checks live here so every layout behaves the same. A layout with options of its
    own stores them in its ``__init__`` before calling this one.

    Attributes:
        root: The folder (or label file) the reader was opened on.
        split: The official split read, or None for sources without official splits.
        source: Source name given to every sample (``"idrid"``, ``"ddr"``, ...).
        skip_missing: Leave out label rows whose image is missing (with a warning) instead of failing;
            layouts without label rows ignore it.
    """

    #: Name of the layout in ``LAYOUTS``.
    layout: ClassVar[str] = ""
    #: The dataset in words, for messages, and its article ("an FGADR ...").
    title: ClassVar[str] = ""
    article: ClassVar[str] = "a"
    #: Official splits, the default first; empty when the source has none.
    splits: ClassVar[tuple[str, ...]] = ()
    default_source: ClassVar[str] = ""

    def __init__(
        self, root: str | Path, split: str | None = None, *, source: str | None = None, skip_missing: bool = False
    ) -> None:
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise FileNotFoundError(f"{self.root}: no such file or folder")
        self.split = self._resolve_split(split)
        self.source = source or self.default_source
        self.skip_missing = skip_missing
        self._entries: list[_Entry] = []
        self._scan()

    def _scan(self) -> None:
        """Find this layout's images and labels under ``root`` and hand them to ``_set_entries``.

        Raises:
            ValueError: ``root`` does not hold this layout (``_not_this``), or a label file is malformed.
        """
        raise NotImplementedError

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

    def _load(self, entry: _Entry) -> Sample:
        # Through the module, not the function: preprocess owns every photograph decode, and tests count calls.
        image = preprocess.load_rgb(entry.path)
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
