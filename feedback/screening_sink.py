"""``drgnet screen --db``: screened photographs go into the database and so into the review worklist.

Registered as the ``db`` sink of the ``drgnet.screen_sinks`` entry points (pyproject.toml), because ``drgnet``
itself must not import the database layer (DESIGN.md §2). For each scored photograph, in one transaction: the
photograph is ingested exactly as an upload is (``db.ingest.ingest_image``: validated, EXIF-oriented, stripped of
metadata, deduplicated), and the screening model's prediction is recorded with its maps at the photograph's
resolution (``feedback.predictions.store_prediction``), the same way the review app records one.

Rerunning a screening (``drgnet screen`` resumes) or screening a photograph the database already holds adds no
second row: the image is found by its content, and a prediction of the same model for it is kept, not repeated.

Only the active model version's predictions are what clinicians see. Screening with any other checkpoint (a
candidate awaiting approval, a rejected or retired version, an unregistered folder) stores shadow predictions:
kept and comparable on the dashboard, never shown in or used to sort the worklist. Whether a prediction is a
shadow one is decided in the transaction that stores it, against the version active at that moment.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from db import migrate, repository
from db.engine import data_dir as default_data_dir
from db.engine import make_sessionmaker
from db.ingest import ingest_image
from drgnet.data.preprocess import load_rgb
from drgnet.inference import prediction_at_full_resolution
from drgnet.model.checkpoint import WEIGHTS, sha256_file
from drgnet.screening import SinkError
from feedback.display import make_display
from feedback.intake import prepare_upload
from feedback.predictions import store_maps, store_prediction
from feedback.retrain import resolve_checkpoint


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


class DatabaseSink:
    """Stores screened photographs and their predictions (a ``drgnet.screening.ScreenSink``).

    Args:
        url: Database URL (default: ``$DRGNET_DATABASE_URL``, else ``drgnet.db`` in ``data_dir``).
        data_dir: Where photographs and maps are stored (default: ``$DRGNET_DATA_DIR``, else ``./data``).
        source: Recorded as each image's source (a clinic, camera or batch name).
        checkpoint: The screening checkpoint; predictions are linked to the registered model version with the
            same weights, else recorded under the checkpoint's name.
        threshold: Lesion probability threshold of the stored lesion summary.

    Raises:
        ValueError: The database is unreachable or not migrated to this version's schema.
    """

    def __init__(
        self,
        url: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        source: str | None = "screening",
        checkpoint: str | os.PathLike[str] | None = None,
        threshold: float = 0.5,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.source = source
        self.threshold = threshold
        self.engine = migrate.open_current(url, data_directory=self.data_dir)
        self.sessions = make_sessionmaker(self.engine)
        self._lock = threading.Lock()  # store() may be called from several threads (drgnet.screening's pipeline)
        self.model_version_id: int | None = None
        self.stored = 0  # predictions added
        self.shadow = 0  # of which shadow predictions (the model was not the active version)
        self.already = 0  # photographs that already had this model's prediction
        if checkpoint is not None:
            self.use_checkpoint(checkpoint)

    def use_checkpoint(self, checkpoint: str | os.PathLike[str]) -> None:
        """Link the predictions to the registered version whose weights are this checkpoint's (if any)."""
        weights = Path(checkpoint) / WEIGHTS
        if not weights.is_file():
            self.model_version_id = None
            return
        sha = sha256_file(weights)
        with self.sessions() as session:
            version = repository.model_version_by_checkpoint(session, sha)
            self.model_version_id = None if version is None else version.id

    def active_checkpoint(self) -> Path:
        """The active model version's checkpoint folder, for screening with the model the app serves.

        Raises:
            ValueError: no version is active, or its checkpoint is missing.
        """
        with self.sessions() as session:
            version = repository.active_model_version(session)
            if version is None:
                raise ValueError(
                    "no model version is active in the database; give --checkpoint, or register and promote one "
                    "(`drgnet model register` / `drgnet model promote`)"
                )
            path = resolve_checkpoint(version.checkpoint_path, self.data_dir)
            name, version_id = version.name, version.id
        if not (path / WEIGHTS).is_file():
            raise ValueError(f"model version {name!r}: checkpoint {path} is missing")
        self.model_version_id = version_id
        return path

    def store(
        self,
        item: Any,
        row: dict[str, Any],
        grade_probs: np.ndarray,
        lesion_probs: np.ndarray,
        attention: np.ndarray,
    ) -> None:
        """Ingest one screened photograph and record its prediction, in one transaction.

        Raises:
            ValueError: the photograph is not acceptable to the database (too large, unsupported format ...).
            SinkError: the database or the data directory failed; nothing of this photograph was committed.
        """
        with self._failures_stop_the_run(item.path):
            self._store_one(item, row, grade_probs, lesion_probs, attention)

    @contextmanager
    def _failures_stop_the_run(self, path: str) -> Iterator[None]:
        from sqlalchemy.exc import DBAPIError

        try:
            yield
        except DBAPIError as exc:
            reason = _one_line(str(exc.orig) if exc.orig is not None else str(exc))
            raise SinkError(f"{path}: the database failed ({reason})") from exc
        except OSError as exc:
            raise SinkError(f"{path}: cannot write to the data directory {self.data_dir} ({exc})") from exc

    def _store_one(self, item: Any, row: dict[str, Any], *maps: np.ndarray) -> None:
        grade_probs, lesion_probs, attention = maps
        if item.data is None or item.pre is None:
            raise ValueError(f"{item.path}: the photograph's bytes were not kept for the database")
        # The costly part first, outside the transaction and the lock, so several threads can share the work:
        # the metadata-free PNG of ingestion, the maps at the photograph's resolution and their files.
        intake = prepare_upload(item.data, item.path)
        prediction = prediction_at_full_resolution(
            item.pre,
            np.asarray(grade_probs, np.float64),
            lesion_probs,
            attention,
            threshold=self.threshold,
            model_version=str(row.get("model_version") or ""),
        )
        hashes = store_maps(prediction, self.data_dir)
        # The review page's display-size derivatives, also made here outside the lock (from the stored pixels).
        display = make_display(
            load_rgb(io.BytesIO(intake.prepared.png)), prediction.lesion_probs, prediction.attention, self.data_dir
        )
        model_name = None if self.model_version_id is not None else (row.get("model_version") or "screening")
        # One transaction at a time: "has this model's prediction already?" and the insert must not interleave.
        with self._lock, self.sessions.begin() as session:
            image = ingest_image(
                session,
                item.data,
                intake.filename,
                data_dir=self.data_dir,
                source=self.source,
                prepared=intake.prepared,
                eye=intake.eye or "unknown",
                acquisition_date=intake.acquisition_date,
                device_model=intake.device_model,
            ).image
            same_model = repository.prediction_of_model(
                session, image.id, model_version_id=self.model_version_id, model_name=model_name
            )
            if same_model is not None:
                self.already += 1
                return
            active = repository.active_model_version(session)
            shadow = self.model_version_id is None or active is None or self.model_version_id != active.id
            store_prediction(
                session,
                image,
                prediction,
                shadow=shadow,
                model_version_id=self.model_version_id,
                model_name=model_name,
                data_dir=self.data_dir,
                map_hashes=hashes,
                display_hashes=display,
                extra_summary={
                    "_gradable": bool(row.get("gradable")),
                    "_quality_reasons": row.get("quality_reasons") or "",
                    "_screening_engine": row.get("engine") or "",
                },
            )
            self.stored += 1
            self.shadow += int(shadow)

    def describe(self) -> str:
        where = self.engine.url.render_as_string(hide_password=True)
        text = f"database {where}: {self.stored - self.shadow} predictions stored for review"
        if self.shadow:
            text += (
                f", {self.shadow} shadow predictions (this checkpoint is not the active model version: stored for "
                "comparison on the dashboard, not shown in the worklist)"
            )
        if self.already:
            text += f", {self.already} photographs already had this model's prediction"
        return text

    def close(self) -> None:
        self.engine.dispose()
