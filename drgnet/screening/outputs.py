"""The results file: the ``COLUMNS`` of a row, appended row by row (CSV or JSONL), repaired and read back."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drgnet.labels import LESIONS, NUM_GRADES

#: Output columns, in order. CSV and JSONL rows carry the same keys; missing values are empty / null.
COLUMNS: tuple[str, ...] = (
    "path",
    "sha256",
    "status",  # "ok" or "error"
    "error",
    "grade",
    "grade_name",
    *(f"p_grade_{g}" for g in range(NUM_GRADES)),
    "referable",
    "referable_probability",
    "uncertainty",
    "gradable",
    "quality_reasons",
    "fov_found",
    "brightness",
    "clipped_dark",
    "clipped_bright",
    "sharpness",
    "fov_diameter",
    *(f"{lesion}_{key}" for lesion in LESIONS for key in ("area_fraction", "count")),
    "model_version",
    "engine",
    "overlay",
)

_PROB_DIGITS = 6


def one_line(message: str) -> str:
    """``message`` with every run of whitespace (newlines included) as one space: a row's error is one line."""
    return " ".join(str(message).split())


class ResultWriter:
    """Appends rows to a CSV or JSONL file, one flushed line per row, and knows what is already in it.

    Opening an existing file repairs it for appending: a last line without its newline (the run was killed
    while writing it) is cut off. ``done`` holds the sha256 of every complete row.

    Raises:
        ValueError: Unknown suffix, or the existing file is not a screening output of this version.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str] = COLUMNS) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix == ".csv":
            self.format = "csv"
        elif suffix in (".jsonl", ".ndjson"):
            self.format = "jsonl"
        else:
            raise ValueError(f"{self.path}: output must end in .csv or .jsonl")
        self.columns = tuple(columns)
        self.done: set[str] = set()
        self.existing_rows = 0
        self.dropped_partial_line = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._repair_and_read()
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._fh = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if new and self.format == "csv":
            self._emit(self._csv_line(list(self.columns)))

    def _repair_and_read(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
            data = data[:cut]
            self.dropped_partial_line = True
        lines = data.decode("utf-8").splitlines()
        if not lines:
            return
        if self.format == "csv":
            header = next(csv.reader([lines[0]]))
            if tuple(header) != self.columns:
                raise ValueError(
                    f"{self.path}: its columns are not this version's screening columns; write to a new file"
                )
            body = lines[1:]
            for n, values in enumerate(csv.reader(body), start=2):
                if len(values) != len(self.columns):
                    raise ValueError(f"{self.path}:{n}: expected {len(self.columns)} fields, found {len(values)}")
                self._seen(dict(zip(self.columns, values, strict=True)))
        else:
            for n, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{self.path}:{n}: not a JSON line ({exc.msg})") from None
                self._seen(row)

    def _seen(self, row: dict[str, Any]) -> None:
        self.existing_rows += 1
        if row.get("sha256"):
            self.done.add(str(row["sha256"]))

    @staticmethod
    def _csv_line(values: list[Any]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(["" if v is None else v for v in values])
        return buffer.getvalue()

    def _emit(self, line: str) -> None:
        self._fh.write(line)
        self._fh.flush()

    def write(self, row: dict[str, Any]) -> None:
        values = {k: row.get(k) for k in self.columns}
        for k in ("error", "path"):
            if isinstance(values[k], str):
                values[k] = one_line(values[k]) if k == "error" else values[k].replace("\n", " ")
        if self.format == "csv":
            self._emit(self._csv_line(list(values.values())))
        else:
            self._emit(json.dumps(values, ensure_ascii=False, allow_nan=False) + "\n")
        if values.get("sha256"):
            self.done.add(str(values["sha256"]))

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a screening output, typed (numbers, booleans, None) whether it is CSV or JSONL."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: _parse_csv_value(k, v) for k, v in row.items()} for row in csv.DictReader(fh)]


_TEXT_COLUMNS = {"path", "sha256", "status", "error", "grade_name", "quality_reasons", "model_version", "engine"}


def _parse_csv_value(key: str, value: str) -> Any:
    if value == "":
        return None
    if key in _TEXT_COLUMNS or key == "overlay":
        return value
    if value in ("True", "False"):
        return value == "True"
    if key == "grade" or key.endswith("_count"):
        return int(value)
    return float(value)
