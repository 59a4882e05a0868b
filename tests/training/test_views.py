"""High-resolution training views: lesion-centred crops keep their lesion, crops carry no grade, healthy real
photographs teach the grade but never the lesion maps, and a mixed config trains end to end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from drgnet.config import MixSource, override
from drgnet.data import Sample
from drgnet.data.readers import open_dataset
from drgnet.data.synthetic import generate_cohort, generate_fundus
from drgnet.losses import grade_at_least_loss
from drgnet.model import DRGNet
from drgnet.training.engine import fit, score
from drgnet.training.mix import open_mix_source, training_set
from drgnet.training.presets import PRESETS
from drgnet.training.task import JointTask
from drgnet.training.views import HighResViews, ViewSource, lesion_crop_box


def _photo(grade: int, seed: int, size: int = 256) -> Sample:
    f = generate_fundus(grade, size=size, seed=seed)
    return Sample(f.image, f"syn{seed}", "synthetic", grade=grade, masks=f.masks, lesion_known=(True,) * 4)


def _one_lesion_photo() -> Sample:
    """A grade-1 photograph whose only lesion is one microaneurysm at a known place."""
    sample = _photo(1, 3)
    masks = np.zeros_like(sample.masks)
    masks[0, 100:103, 60:63] = 1
    return dataclasses.replace(sample, masks=masks)


def test_crop_box_contains_its_centre_even_at_the_border():
    rng = np.random.default_rng(0)
    side, size = 128, 64
    for pixel in (0, side * side - 1, 5 * side + 120, 70 * side + 3):
        y, x = lesion_crop_box(np.array([pixel]), np.arange(side * side), side, size, True, rng)
        py, px = divmod(pixel, side)
        assert 0 <= y <= side - size and 0 <= x <= side - size
        assert y <= py < y + size and x <= px < x + size


def test_class_balanced_crops_centre_the_rare_class_as_often_as_the_common_one():
    # One microaneurysm (9 px) beside a field of exudate (900 px): by pixel, 1 % of lesion-centred crops hold the
    # MA; by class, half of them.
    sample = _photo(2, 4)
    masks = np.zeros_like(sample.masks)
    masks[0, 60:63, 126:129] = 1
    masks[2, 150:180, 150:180] = 1
    sample = dataclasses.replace(sample, masks=masks)
    holds_ma = {}
    for balance in ("pixel", "class"):
        views = HighResViews(
            [ViewSource([sample])], 64, 256, crops_per_global=1, lesion_crop_fraction=1.0, lesion_crop_balance=balance
        )
        torch.manual_seed(0)
        holds_ma[balance] = np.mean([float(views[1]["masks"][0].sum() > 0) for _ in range(200)])
    assert holds_ma["pixel"] < 0.1
    assert 0.35 < holds_ma["class"] < 0.65
    with pytest.raises(ValueError, match="lesion_crop_balance"):
        HighResViews([ViewSource([sample])], 64, 256, crops_per_global=1, lesion_crop_balance="region")


def test_lesion_centred_crops_contain_the_lesion_and_have_no_grade():
    views = HighResViews([ViewSource([_one_lesion_photo()])], 64, 256, crops_per_global=3, lesion_crop_fraction=1.0)
    assert len(views) == 4
    assert views.grades == [1, None, None, None]
    for index in (1, 2, 3):
        item = views[index]
        assert item["image"].shape == (3, 64, 64)
        assert int(item["grade"]) == -1 and int(item["grade_min"]) == 0
        assert item["masks"][0].sum() > 0  # the microaneurysm is inside every lesion-centred crop
        assert item["mask_weights"][0].sum() > 0
    global_view = views[0]
    assert int(global_view["grade"]) == 1 and global_view["image"].shape == (3, 64, 64)


def test_random_crops_fall_inside_the_field_of_view():
    views = HighResViews([ViewSource([_one_lesion_photo()])], 64, 256, crops_per_global=1, lesion_crop_fraction=0.0)
    torch.manual_seed(0)
    inside = [float(views[1]["mask_weights"][0].mean()) for _ in range(8)]
    assert min(inside) > 0.2  # centred on a FOV pixel: never a crop of the black corners only


def test_healthy_real_photographs_teach_grade_zero_and_no_lesion_loss():
    healthy = _photo(0, 5)
    unlabelled = Sample(healthy.image, "healthy", "real-healthy")  # a real photograph: no grade, no masks
    idrid = dataclasses.replace(_photo(2, 6), grade=None)
    views = HighResViews(
        [ViewSource([unlabelled], weight=2.0, grade=0), ViewSource([idrid], weight=8.0, min_grade=1)],
        64,
        128,
        crops_per_global=1,
    )
    item = views[0]
    assert int(item["grade"]) == 0
    assert float(item["mask_weights"].sum()) == 0.0  # lesion loss ignored, not "no lesion"
    assert float(views[1]["mask_weights"].sum()) == 0.0
    dr = views[2]
    assert int(dr["grade"]) == -1 and int(dr["grade_min"]) == 1
    assert float(dr["mask_weights"].sum()) > 0
    weights = views.sampling_weights()
    assert weights.tolist() == pytest.approx([2.0, 2.0, 8.0, 8.0])


def test_grade_at_least_loss_rewards_mass_above_the_bound():
    logits = torch.tensor([[4.0, 0, 0, 0, 0], [0, 0, 4.0, 0, 0], [4.0, 0, 0, 0, 0]])
    bound = torch.tensor([1, 1, 0])
    per_row = [float(grade_at_least_loss(logits[i : i + 1], bound[i : i + 1])) for i in range(2)]
    assert per_row[0] > 2.0 > 0.1 > per_row[1]  # grade 0 predicted for a DR photograph costs; grade 2 does not
    assert float(grade_at_least_loss(logits[2:], bound[2:])) == 0.0


def test_joint_task_skips_the_grade_of_crops():
    cfg = PRESETS["tiny"]
    torch.manual_seed(0)
    task = JointTask(DRGNet(cfg.model), cfg.loss)
    views = HighResViews([ViewSource([_one_lesion_photo()])], 64, 128, crops_per_global=1)
    crop = torch.utils.data.default_collate([views[1], views[1]])
    with torch.no_grad():
        losses = task(crop)
    assert float(losses["grade"]) == 0.0 and float(losses["grade_at_least"]) == 0.0
    assert float(losses["lesion_focal"]) > 0.0


def test_mixed_config_builds_views_of_every_source(tmp_path):
    generate_cohort(tmp_path / "a", 4, size=128, grades=[0, 1, 2, 3], seed=1)
    generate_cohort(tmp_path / "b", 2, size=128, grades=[2, 4], seed=2)
    cfg = override(
        PRESETS["tiny"],
        {
            "crops_per_global": 2,
            "mix": [{"data": str(tmp_path / "b"), "weight": 4.0}],
            "model.input_size": 64,
        },
    )
    assert cfg.mix == (MixSource(str(tmp_path / "b"), weight=4.0),)
    views = training_set(cfg, open_dataset(tmp_path / "a"), [0, 1, 2, 3], None)
    assert len(views) == 6 * 3
    assert views.sampling_weights()[-1] / views.sampling_weights()[0] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="weight must be positive"):
        open_mix_source(MixSource(str(tmp_path / "b"), weight=0.0))
    with pytest.raises(ValueError, match="not an ICDR grade"):
        open_mix_source(MixSource(str(tmp_path / "b"), grade=7))


class _CountingTask(JointTask):
    steps = 0

    def after_step(self, losses, step):
        self.steps += 1
        return {}


def test_a_small_mixed_set_trains_the_whole_step_budget(tmp_path):
    # Two views make one batch of 2, yet an epoch of drawn views is max_steps_per_epoch steps: four real
    # photographs must train as long as a cohort of hundreds in the leave-one-out comparison.
    cfg = override(PRESETS["tiny"], {"epochs": 1, "max_steps_per_epoch": 3, "batch_size": 2})
    views = HighResViews([ViewSource([_one_lesion_photo()])], 64, 128, crops_per_global=1)
    task = _CountingTask(DRGNet(cfg.model), cfg.loss)
    lines: list[str] = []
    result = fit(task, views, None, cfg, tmp_path, progress=False, log=lines.append)
    assert task.steps == 3
    # Without a validation set the kept checkpoint is the lowest training loss's, recorded as such: no "QWK" made
    # of a loss.
    loss = result.history[0]["train"]["loss"]
    assert result.best_metrics == {"epoch": 0, "train_loss": loss}
    assert "QWK" not in lines[-1] and "no validation set" in lines[-1]


def test_without_validation_the_lowest_training_loss_ranks_first():
    assert score({"train_loss": 1.0}) > score({"train_loss": 2.0}) > score({"train_loss": float("nan")})
    assert score({"qwk": 0.2}) > score({"qwk": 0.1}) > score({})


def test_a_mix_source_leaves_out_the_photographs_it_excludes(tmp_path, monkeypatch):
    generate_cohort(tmp_path / "b", 3, size=96, grades=[0, 2, 4], seed=2)
    names = open_dataset(tmp_path / "b").names
    kept = open_mix_source(MixSource(str(tmp_path / "b"), exclude=(names[1],)))
    assert [s.name for s in kept.samples] == [names[0], names[2]]
    with pytest.raises(ValueError, match="exclude names nobody, not among its photographs"):
        open_mix_source(MixSource(str(tmp_path / "b"), exclude=("nobody",)))
    # The healthy real photographs are named before any is read: a misspelt hold-out is an error, not a no-op.
    with pytest.raises(ValueError, match="exclude names DRIVE_04; known: skimage_retina, DRIVE_22"):
        open_mix_source(MixSource("real-healthy", grade=0, exclude=("DRIVE_04",)))
    # "idrid-train4" names the shared folder's four real photographs; without that folder the error says so.
    monkeypatch.setenv("DRGNET_SHARED_DIR", str(tmp_path / "no-shared"))
    with pytest.raises(ValueError, match="no shared data folder with data/idrid-train4"):
        open_mix_source(MixSource("idrid-train4", min_grade=1))
