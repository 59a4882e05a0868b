"""EyePACS / APTOS style: one label table (CSV / TSV) naming the photographs and their grades."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drgnet.data.readers import _io
from drgnet.data.readers._base import DatasetReader, _Entry, _missing_images

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
        **options: Any,
    ) -> None:
        self.images_dir = images_dir
        self.id_column = id_column
        self.grade_column = grade_column
        super().__init__(root, split, **options)

    def _scan(self) -> None:
        self.table = self._pick_table(self.root, self.split)
        self.source = self.source or self.table.parent.name.lower() or "csv"
        columns, records = _io.read_table(self.table)
        id_col = _io.pick_column(columns, self.id_column, ID_COLUMNS)
        if id_col is None:
            raise ValueError(
                f"{self.table}: no image-id column; expected one of {', '.join(ID_COLUMNS)} "
                f"(columns: {', '.join(columns)}); pass id_column="
            )
        grade_col = _io.pick_column(columns, self.grade_column, GRADE_COLUMNS)
        ids = [(line, row[id_col]) for line, row in records]
        for line, image_id in ids:
            if not image_id:
                raise ValueError(f"{self.table}, line {line}: the image id is empty")
        folder = self._image_folder(self.images_dir, [i for _, i in ids[:20]])
        index = _io.FileIndex(folder, _io.IMAGE_EXTENSIONS) if folder.is_dir() else None
        entries, missing, where = [], [], {}
        for line, row in records:
            at = f"{self.table}, line {line}"
            image_id = row[id_col]
            grade = None
            if grade_col is not None:
                grade = _io.parse_grade(row[grade_col], f"{at} ({image_id})", allow_empty=True)
            path = self._resolve(folder, index, image_id)
            if path is None:
                missing.append(f"{at}: image {image_id!r} not found in {folder}")
                continue
            name = _io.strip_image_extension(image_id)
            where.setdefault(name, at)
            meta = {k: v for k, v in row.items() if k not in (id_col, grade_col)}
            entries.append(_Entry(name=name, path=path, source=self.source, grade=grade, meta=meta))
        _missing_images(self.table, missing, self.skip_missing)
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
            index = _io.FileIndex(folder, _io.IMAGE_EXTENSIONS)
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
    def _resolve(folder: Path, index: _io.FileIndex | None, image_id: str) -> Path | None:
        if index is not None and "/" not in image_id and "\\" not in image_id:
            return index.find(image_id)
        candidate = Path(image_id)
        if not candidate.is_absolute():
            candidate = folder / candidate
        if candidate.is_file():
            return candidate
        for ext in _io.IMAGE_EXTENSIONS:
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
                rows = _io.read_rows(table)
            except OSError:
                continue
            if rows and _io.pick_column(rows[0][1], None, ID_COLUMNS) is not None:
                return True
        return False
