"""The one training loop: hooks, schedules, parameter groups, the EMA teacher, and the settings every command reads."""

from __future__ import annotations

import ast
import inspect
import random

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from drgnet.cli import app
from drgnet.config import LossConfig, TrainConfig, TransferConfig, build_config, override
from drgnet.model import DRGNet
from drgnet.training import adapt, engine
from drgnet.training.engine import (
    forever,
    make_optimizer,
    param_groups,
    prepare_training,
    run_steps,
    step_progress,
    warmup_cosine,
)
from drgnet.training.presets import get_preset


class _Regression(nn.Module):
    """A task on a linear model that records what the loop tells it."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Linear(3, 1)
        self.calls: list[tuple[str, int]] = []
        self.lrs: list[float] = []

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss = (self.model(batch["x"]).squeeze(1) - batch["y"]).pow(2).mean()
        return {"loss": loss, "_hidden": loss * 0, "double": 2 * loss}

    def before_step(self, step: int) -> None:
        self.calls.append(("before", step))

    def after_step(self, losses: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        self.calls.append(("after", step))
        return {"extra": float(step)}


def _batches(n: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [{"x": torch.randn(4, 3, generator=g), "y": torch.randn(4, generator=g)} for _ in range(n)]


def test_run_steps_calls_the_hooks_with_global_steps_and_follows_the_schedule() -> None:
    torch.manual_seed(0)
    task = _Regression()
    optimizer = make_optimizer(task.model, lr=0.1, weight_decay=0.0)
    lrs: list[float] = []
    means = run_steps(
        task,
        iter(_batches(3)),
        optimizer,
        steps=5,  # only 3 batches: the loop stops when they run out
        first_step=10,
        total_steps=40,
        schedule="cosine",
        on_step=lambda step, logged: lrs.append(optimizer.param_groups[0]["lr"]),
    )
    assert task.calls == [(kind, s) for s in (10, 11, 12) for kind in ("before", "after")]
    assert lrs == pytest.approx([0.1 * warmup_cosine(s, 40) for s in (10, 11, 12)])
    assert set(means) == {"loss", "double", "extra"}  # "_hidden" is for hooks only
    assert means["extra"] == pytest.approx(11.0) and means["double"] == pytest.approx(2 * means["loss"])


def test_prepare_training_seeds_every_generator_and_returns_the_optimiser() -> None:
    cfg = TransferConfig(seed=7, lr=0.01, encoder_lr_scale=1.0, weight_decay=0.05)
    draws = []
    for _ in range(2):
        model = nn.Linear(3, 1).eval()
        optimizer = prepare_training(model, cfg, "cpu")
        draws.append((random.random(), float(np.random.rand()), float(torch.rand(1))))
        assert model.training  # the run starts in training mode
        assert isinstance(optimizer, torch.optim.AdamW)
        assert [g["lr"] for g in optimizer.param_groups] == [0.01]
        assert optimizer.param_groups[0]["weight_decay"] == 0.05
    assert draws[0] == draws[1]
    prepare_training(nn.Linear(3, 1), TransferConfig(seed=8), "cpu")
    assert random.random() != draws[0][0]


def test_step_progress_reports_each_step_to_a_callable_or_a_bar() -> None:
    reports: list[tuple[float, str]] = []
    task = _Regression()
    with step_progress(2, "fine-tuning", lambda done, text: reports.append((done, text))) as on_step:
        run_steps(task, iter(_batches(2)), make_optimizer(task.model, 0.1), 2, on_step=on_step)
    assert [done for done, _ in reports] == [0.5, 1.0]
    assert reports[1][1].startswith("fine-tuning step 2/2: loss ")
    with step_progress(2, "adapt", False) as on_step:
        on_step(0, {"loss": 1.0})  # a disabled bar: nothing shown, nothing raised


def _calls(function: object) -> set[str]:
    tree = ast.parse(inspect.getsource(function))  # type: ignore[arg-type]
    return {
        node.func.id if isinstance(node.func, ast.Name) else node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
    }


def test_fit_adaptation_and_retraining_start_through_one_setup() -> None:
    # Each once seeded and built its optimiser its own way (retraining seeded torch alone).
    from feedback.retrain import finetune

    for run in (engine.fit, adapt.adapt, finetune):
        calls = _calls(run)
        assert "prepare_training" in calls and "step_progress" in calls, run.__qualname__
        assert not calls & {"seed_everything", "manual_seed", "make_optimizer", "tqdm"}, run.__qualname__


def test_warmup_cosine_rises_then_falls_to_its_floor() -> None:
    factors = [warmup_cosine(s, 100) for s in range(100)]
    assert factors[0] == pytest.approx(0.2) and factors[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:], strict=False))
    assert factors[-1] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="choose one of cosine, constant"):
        run_steps(_Regression(), iter([]), make_optimizer(nn.Linear(1, 1), 0.1), 1, schedule="linear")


def test_parameter_groups_slow_the_encoder_and_cover_every_parameter_once() -> None:
    model = DRGNet(get_preset("tiny").model)
    groups = param_groups(model, lr=1e-3, encoder_lr_scale=0.3)
    assert [g["lr"] for g in groups] == pytest.approx([3e-4, 1e-3])
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert len(param_groups(nn.Linear(2, 2), lr=0.1)) == 1  # no encoder: one group


def test_forever_cycles_a_finite_loader() -> None:
    stream = forever([1, 2])
    assert [next(stream) for _ in range(5)] == [1, 2, 1, 2, 1]


def test_settings_are_typed_by_their_field_and_unknown_keys_are_named(tmp_path) -> None:
    cfg = build_config(
        get_preset("tiny"),
        None,
        ["loss.grade_weight=2", "epochs=3", "model.encoder_weights=null", "grade_balanced_sampling=false"],
    )
    assert (cfg.loss.grade_weight, cfg.epochs, cfg.model.encoder_weights) == (2.0, 3, None)
    assert cfg.grade_balanced_sampling is False and cfg.model.input_size == 64  # the rest of the preset stays
    toml = tmp_path / "train.toml"
    toml.write_text('epochs = 4\nsplit_fractions = [0.5, 0.25, 0.25]\n[loss]\ngrade_loss = "gce"\n')
    from_file = build_config(TrainConfig(), toml, ["lr=0.01"])
    assert (from_file.epochs, from_file.split_fractions, from_file.loss.grade_loss, from_file.lr) == (
        4,
        (0.5, 0.25, 0.25),
        "gce",
        0.01,
    )
    with pytest.raises(ValueError, match=r"unknown setting 'loss\.grade_wieght' .*valid: lesion_weight"):
        build_config(TrainConfig(), None, ["loss.grade_wieght=2"])
    with pytest.raises(ValueError, match="epochs: 'many' is not a valid int"):
        build_config(TrainConfig(), None, ["epochs=many"])
    with pytest.raises(ValueError, match="write KEY=VALUE"):
        build_config(TrainConfig(), None, ["epochs"])
    assert override(TransferConfig(), {"loss.constraint_weight": 1}).loss == LossConfig(constraint_weight=1.0)
    fractions = build_config(TrainConfig(), None, ["split_fractions=0.6, 0.2,0.2"]).split_fractions
    assert fractions == (0.6, 0.2, 0.2)


def test_commands_refuse_an_unknown_setting_by_name() -> None:
    runner = CliRunner()
    for command in (["train", "--preset", "tiny"], ["bench", "transfer"]):
        result = runner.invoke(app, [*command, "--set", "epochz=2"])
        assert result.exit_code == 2 and "epochz" in result.output, result.output
    result = runner.invoke(
        app, ["adapt", "--checkpoint", "x", "--source", "y", "--target-images", "z", "--out", "o", "--set", "a=1"]
    )
    assert result.exit_code == 2 and "wasserstein_weight" in result.output  # the valid keys are listed
