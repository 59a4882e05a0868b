"""The active model for the review app and the screening command, picked up without a restart.

``get_predictor(session)`` returns a :class:`drgnet.inference.Predictor` for the active model version
(:func:`get_active` returns the version row with it). Each call costs one small query
(:func:`db.repository.active_model_version`, the one way the active version is looked up); the checkpoint is loaded
again only when a promotion or rollback changed the version's id or checkpoint hash. Thread-safe: Streamlit
serves sessions from several threads.

In the app::

    @st.cache_resource
    def active_model() -> ActiveModel:
        return ActiveModel()

    predictor = active_model().get_predictor(session)   # None while no version is active
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from db import repository
from db.models import ModelVersion
from drgnet.inference import Predictor
from feedback.retrain import load_version_model


class ActiveModel:
    """A cache of the predictor of the active model version.

    Args:
        data_dir: Data directory that relative checkpoint paths are resolved against (default ``$DRGNET_DATA_DIR``).
        threshold: Lesion probability threshold of the predictor.
        loader: Builds a predictor for a version row (tests replace it).
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        threshold: float = 0.5,
        loader: Callable[[ModelVersion], Predictor] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.threshold = threshold
        self._loader = loader or self._load
        self._lock = threading.Lock()
        self._key: tuple[int, str] | None = None
        self._predictor: Predictor | None = None
        self.loads = 0  # how many times a checkpoint was loaded (tests and the app's status line)

    def _load(self, version: ModelVersion) -> Predictor:
        model = load_version_model(version, self.data_dir)
        return Predictor(model, model_version=version.name, threshold=self.threshold)

    @property
    def version_id(self) -> int | None:
        """Id of the version currently loaded."""
        return self._key[0] if self._key else None

    def get_active(self, session: Session) -> tuple[Predictor | None, ModelVersion | None]:
        """The active version and its predictor; ``(None, None)`` when no version is active.

        Raises:
            ValueError: when the active version's checkpoint is missing or does not match its recorded sha256.
        """
        version = repository.active_model_version(session)
        if version is None:
            return None, None
        key = (version.id, version.checkpoint_sha256)
        with self._lock:
            if key != self._key or self._predictor is None:
                self._predictor = self._loader(version)
                self._key = key
                self.loads += 1
            return self._predictor, version

    def get_predictor(self, session: Session) -> Predictor | None:
        """The predictor of the active version, or None when no version is active (see :meth:`get_active`)."""
        return self.get_active(session)[0]


_default: ActiveModel | None = None
_default_lock = threading.Lock()


def _shared(data_dir: str | Path | None) -> ActiveModel:
    global _default
    with _default_lock:
        if _default is None or (data_dir is not None and _default.data_dir != data_dir):
            _default = ActiveModel(data_dir)
        return _default


def get_active(session: Session, data_dir: str | Path | None = None) -> tuple[Predictor | None, ModelVersion | None]:
    """The active version and its predictor from a process-wide :class:`ActiveModel` (created on first use)."""
    return _shared(data_dir).get_active(session)


def get_predictor(session: Session, data_dir: str | Path | None = None) -> Predictor | None:
    """The active version's predictor from a process-wide :class:`ActiveModel` (created on first use)."""
    return _shared(data_dir).get_predictor(session)
