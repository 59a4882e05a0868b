"""Cohorts written by ``drgnet synth`` (IDRiD-like file names, a grades table and a manifest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drgnet.data.readers import _io
from drgnet.data.readers._base import DatasetReader, _Entry, _lesion_indexes, _lesion_masks, _missing_images
from drgnet.data.readers.idrid import _IDRID_LESION_DIRS
from drgnet.labels import LESIONS

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

    def _scan(self) -> None:
        images = self.root / _SYN_IMAGES
        labels = self.root / _SYN_GRADES
        if not _io.has_images(images) or not labels.is_file():
            raise self._not_this()
        self.manifest = self._read_manifest(self.root / _SYN_MANIFEST)
        default_style = self.manifest.get("style") if isinstance(self.manifest.get("style"), str) else None
        columns, records = _io.read_table(labels)
        if "Image name" not in columns or "Retinopathy grade" not in columns:
            raise ValueError(
                f"{labels}: expected columns 'Image name' and 'Retinopathy grade', found: {', '.join(columns)}"
            )
        masks = self.root / _SYN_MASKS
        indexes = _lesion_indexes([masks / _IDRID_LESION_DIRS[c] if masks.is_dir() else None for c in LESIONS], masks)
        index = _io.FileIndex(images, _io.IMAGE_EXTENSIONS)
        entries, missing, where = [], [], {}
        for line, row in records:
            at = f"{labels}, line {line}"
            name = _io.strip_image_extension(row["Image name"])
            if not name:
                raise ValueError(f"{at}: the image name is empty")
            grade = _io.parse_grade(row["Retinopathy grade"], f"{at} ({name})")
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
        _missing_images(labels, missing, self.skip_missing)
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
        return (root / _SYN_GRADES).is_file() and _io.has_images(root / _SYN_IMAGES) and (root / _SYN_MASKS).is_dir()
