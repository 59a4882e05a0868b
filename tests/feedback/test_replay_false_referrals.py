"""Issue 16, "Done when", replayed small: photographs of one camera that all show DR are corrected by clinicians,
retraining is queued by the corrections themselves, and the candidate learns to call that camera's healthy eyes
referable. On main it was promoted automatically on a gate of one photograph; now the gate judges on a registered
hold-out with healthy photographs of the same camera, shows the specificity drop, and the candidate is not promoted
(even with automatic promotion switched on). SQLite and PostgreSQL.

Stand-ins, to stay fast: the "real camera" is the synthetic ``clinic_b`` style at 96 px; the active model is the
tiny test model made cautious (it calls every photograph healthy, so its specificity on the hold-out is 1.0); the
corrections are four DR photographs with their true grades and lesion masks, as in the issue.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from _support_feedback import HOLDOUT_GRADES, png_bytes

from db import repository
from db.artifacts import artifact_store
from db.ingest import ingest_image
from drgnet.data import synthetic
from drgnet.data.readers import open_dataset
from drgnet.model.checkpoint import load_checkpoint, save_checkpoint
from feedback import holdouts, settings
from feedback.jobs import maybe_queue_retraining
from feedback.masks import encode_full
from feedback.retrain import RetrainConfig, register_checkpoint
from feedback.worker import Worker

CAMERA = "clinic_b"

#: Plain fine-tuning that follows the corrections (no replay, no teacher), fast enough for a test.
RETRAIN = {
    "steps": 40,
    "batch_size": 4,
    "lr": 1e-2,
    "encoder_lr_scale": 1.0,
    "grade_loss": "ce",
    "drop_fraction": 0.0,
    "ema_decay": 0.0,
    "consistency_weight": 0.0,
    "lesion_consistency_weight": 0.0,
    "replay_per_batch": 0,
    "healthy_per_batch": 0,
    "holdout_fraction": 0.0,
    "min_holdout_images": len(HOLDOUT_GRADES),
    "eval_batch_size": 10,
}


@pytest.fixture(scope="module")
def cautious_checkpoint(tmp_path_factory: pytest.TempPathFactory, trained_checkpoint: Path) -> Path:
    """The tiny model, shifted to call every photograph grade 0 (no referral)."""
    model, _ = load_checkpoint(trained_checkpoint)
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.grade_head[-1].bias.add_(torch.tensor([4.0, 0.0, 0.0, 0.0, 0.0]))
    return save_checkpoint(tmp_path_factory.mktemp("cautious") / "ckpt", model, model.config)


@pytest.fixture(scope="module")
def camera_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Four DR photographs of the camera (the corrected cases) and a hold-out of it with every grade."""
    root = tmp_path_factory.mktemp("camera")
    dr, holdout = root / "dr", root / "holdout"
    synthetic.generate_cohort(dr, n=4, size=96, style=CAMERA, seed=21, grades=[2, 3, 4, 2], workers=1, progress=False)
    synthetic.generate_cohort(
        holdout, n=len(HOLDOUT_GRADES), size=96, style=CAMERA, seed=5, grades=HOLDOUT_GRADES, workers=1, progress=False
    )
    return dr, holdout


@pytest.mark.slow
def test_corrected_dr_cases_of_one_camera_do_not_promote_a_model_that_refers_its_healthy_eyes(
    Session,  # noqa: N803
    data_dir: Path,
    cautious_checkpoint: Path,
    camera_folders: tuple[Path, Path],
) -> None:
    dr, holdout = camera_folders
    with Session.begin() as s:
        admin = repository.create_user(s, "admin", "mauve-otter-quietly-42", "admin")
        docs = [repository.create_user(s, f"doc{i}", "mauve-otter-quietly-42", "clinician") for i in (1, 2)]
        register_checkpoint(s, cautious_checkpoint, "v1", data_dir=data_dir, activate=True)
        ids = (admin.id, [d.id for d in docs])
    admin_id, doc_ids = ids
    with Session.begin() as s:  # healthy photographs of the same camera as the corrections are in it
        holdouts.register_folder(s, f"{CAMERA}-holdout", holdout, layout="synthetic", source=CAMERA, data_dir=data_dir)
    with Session.begin() as s:  # an admin switched automatic promotion on: it must not matter here
        settings.change(s, settings.AUTO_PROMOTE, True, actor_id=admin_id)

    # Two clinicians correct the four DR photographs with their true grades and lesion masks (full corrections).
    store = artifact_store(data_dir)
    job = None
    with Session.begin() as s:
        for i, sample in enumerate(open_dataset(dr, layout="synthetic")):
            image = ingest_image(s, png_bytes(sample.image), f"{sample.name}.png", data_dir=data_dir, source=CAMERA)
            masks = {
                lesion: store.put_png(encode_full(sample.masks[k]))
                for k, lesion in enumerate(("MA", "HE", "EX", "SE"))
                if sample.lesion_known[k]
            }
            repository.add_annotation(
                s, image.image.id, doc_ids[i % 2], kind="full", grade=sample.grade, mask_hashes=masks
            )
            job = maybe_queue_retraining(s, threshold=4) or job  # the app calls this after every saved correction
        assert job is not None and job.params == {"trigger": "auto"}
        s.get(type(job), job.id).params = {**RETRAIN, "trigger": "auto"}

    worker = Worker(Session, data_dir, "w1", lease_s=60, retrain=RetrainConfig(), log=lambda m: None)
    done = worker.run_once()
    assert done is not None and done.error is None, done.error
    result = done.result
    before = result["metrics"]["parent_holdout"]["holdout"]
    after = result["metrics"]["holdout"]["holdout"]
    # The candidate now refers healthy photographs of this camera: the gate sees it and says so.
    assert before["referable_specificity"] == 1.0
    assert after["referable_specificity"] <= 0.5, after
    drop = [r for r in result["reasons"] if "referable specificity" in r]
    assert drop and "drops more than the allowed" in drop[0], result["reasons"]
    assert result["promoted"] is False and result["status"] == "rejected"
    assert not [r for r in result["reasons"] if "no healthy photograph from camera" in r]
    assert result["metrics"]["holdout_set"] == {
        **result["metrics"]["holdout_set"],
        "name": f"{CAMERA}-holdout",
        "n_images": len(HOLDOUT_GRADES),
    }
    with Session() as s:
        assert repository.active_model_version(s).name == "v1"
        candidate = repository.get_model_version(s, result["version_id"])
        assert candidate.status.value == "rejected"
        assert candidate.metrics["gate"]["passed"] is False


def test_registered_healthy_photographs_are_replayed_in_every_batch(
    sqlite_corrected_db, holdout_cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feedback import retrain

    db = sqlite_corrected_db
    with db.Session.begin() as s:
        holdouts.register_folder(s, "h", holdout_cohort, layout="synthetic", data_dir=db.data_dir)
    healthy = tmp_path / "healthy"
    synthetic.generate_cohort(healthy, n=3, size=96, style=CAMERA, seed=9, grades=[0, 0, 0], workers=1, progress=False)
    with db.Session.begin() as s:
        holdouts.register_folder(
            s, "healthy-b", healthy, layout="synthetic", purpose="healthy-replay", data_dir=db.data_dir
        )
    seen: list[torch.Tensor] = []
    forward = retrain.FeedbackTask.forward

    def spy(self, batch):
        seen.append(batch["grade"][batch["corrected"] == 0].clone())
        return forward(self, batch)

    monkeypatch.setattr(retrain.FeedbackTask, "forward", spy)
    params = {**RETRAIN, "steps": 3, "healthy_per_batch": 2, "min_holdout_images": 5}
    result = retrain.run_retraining(db.Session, params, data_dir=db.data_dir)
    assert result["metrics"]["n_healthy_replay_images"] == 3
    assert len(seen) == 3 and all(len(g) == 2 and (g == 0).all() for g in seen)  # two healthy eyes per batch
