"""Label tables: CSV text (comma, semicolon or tab separated, UTF-8 or a Windows export), their columns and grades."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path

from drgnet.labels import GRADES


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
