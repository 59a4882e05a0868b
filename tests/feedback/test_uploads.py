"""Uploads store first and grade outside the transaction: another clinician's save never waits for the model."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from db import repository
from drgnet.inference import LesionSummary
from drgnet.inference import Prediction as ModelPrediction
from drgnet.labels import LESIONS
from feedback.display import load_display
from feedback.uploads import store_then_predict


def _png(seed: int, size: tuple[int, int] = (80, 60)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class SlowPredictor:
    """Stands in for the model: grading waits until the test lets it go, so the test can act meanwhile."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def prepare(self, rgb: np.ndarray, source: str | None = None):
        if rgb.mean() < 1:
            raise ValueError(f"{source}: not a fundus photograph (all black)")
        return rgb, source or "image"

    def predict_prepared(self, batch):
        self.started.set()
        assert self.release.wait(30), "the test never released the prediction"
        return [self._prediction(batch[0])]

    def predict(self, rgb, source=None):
        return self.predict_prepared([rgb])

    @staticmethod
    def _prediction(rgb: np.ndarray) -> ModelPrediction:
        h, w = rgb.shape[:2]
        lesion = np.zeros((len(LESIONS), h, w), np.float32)
        lesion[1, 10:20, 10:30] = 0.9
        return ModelPrediction(
            grade=2,
            probs=np.array([0.1, 0.2, 0.5, 0.1, 0.1]),
            referable_probability=0.7,
            uncertainty=0.5,
            lesion_probs=lesion,
            attention=np.full((h, w), 0.25, np.float32),
            lesions={n: LesionSummary(0.0, 0, 0.0) for n in LESIONS},
            fov_mask=np.ones((h, w), bool),
            model_version="slow",
        )


@pytest.fixture
def users(Session, cheap_password_hashing):
    with Session.begin() as session:
        a = repository.create_user(session, "uploader", "password-123456", role="clinician")
        b = repository.create_user(session, "grader", "password-123456", role="clinician")
        return a.id, b.id


def test_a_save_commits_while_an_upload_is_being_graded(Session, data_dir, users):
    uploader, grader = users
    with Session.begin() as session:  # an image already in the queue, for the other clinician to annotate
        from db.ingest import ingest_image

        other = ingest_image(session, _png(1), "other.png", data_dir=data_dir).image.id
    predictor = SlowPredictor()
    progress: list[tuple[int, int, str, str]] = []
    result: dict[str, object] = {}

    def upload() -> None:
        result["outcomes"] = store_then_predict(
            Session,
            [("new.png", _png(2))],
            get_predictor=lambda session: (predictor, None),
            uploaded_by_id=uploader,
            data_dir=data_dir,
            on_progress=lambda *a: progress.append(a),
        )

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        assert predictor.started.wait(30), "grading never started"
        # The upload is stored (and visible to others) before the model has finished.
        with Session() as session:
            queue = repository.review_queue(session, grader)
            assert {r.image.original_filename for r in queue} == {"other.png", "new.png"}
        saved: dict[str, float] = {}

        def save() -> None:
            start = time.perf_counter()
            with Session.begin() as session:
                repository.add_annotation(session, other, grader, kind="grade-only", grade=1)
            saved["s"] = time.perf_counter() - start

        saver = threading.Thread(target=save)
        saver.start()
        saver.join(10)
        assert not saver.is_alive(), "the annotation save waited for the upload's prediction"
        assert saved["s"] < 5
        assert not predictor.release.is_set() and thread.is_alive()  # the model was still running meanwhile
    finally:
        predictor.release.set()
        thread.join(30)
    (outcome,) = result["outcomes"]
    assert outcome.error is None and outcome.created and outcome.predicted
    assert [p[3] for p in progress] == ["storing", "grading", "done"]
    with Session() as session:
        assert len(repository.annotations_for_image(session, other)) == 1
        pred = repository.latest_prediction(session, outcome.image_id)
        assert pred.grade == 2 and pred.display_hashes
        pictures = load_display(pred.display_hashes, data_dir)
    assert pictures.photo.shape == (60, 80, 3) and pictures.lesions.shape == (4, 60, 80)
    assert (pictures.lesions[1] >= 128).sum() == 200


def test_a_refused_photograph_leaves_nothing_and_a_failed_grading_keeps_the_photograph(Session, data_dir, users):
    uploader, _ = users
    predictor = SlowPredictor()
    predictor.release.set()
    black = io.BytesIO()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(black, format="PNG")

    class Broken(SlowPredictor):
        def predict_prepared(self, batch):
            raise RuntimeError("out of memory")

    outcomes = store_then_predict(
        Session,
        [("black.png", black.getvalue()), ("junk.jpg", b"not an image")],
        get_predictor=lambda session: (predictor, None),
        uploaded_by_id=uploader,
        data_dir=data_dir,
    )
    assert outcomes[0].error == "black.png: not a fundus photograph (all black)"
    assert outcomes[1].error and outcomes[1].error.startswith("junk.jpg")
    (kept,) = store_then_predict(
        Session,
        [("ok.png", _png(3))],
        get_predictor=lambda session: (Broken(), None),
        uploaded_by_id=uploader,
        data_dir=data_dir,
    )
    assert kept.error is None and not kept.predicted and "grading failed (RuntimeError: out of memory)" in kept.warning
    with Session() as session:
        queue = repository.review_queue(session, uploader)
        assert [r.image.original_filename for r in queue] == ["ok.png"]
        assert repository.latest_prediction(session, kept.image_id) is None
