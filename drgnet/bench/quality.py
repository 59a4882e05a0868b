"""The benchmark that justifies the design: DRGNet, its ablations and the reference structure.

Same synthetic cohort, same train / validation / test split, same number of optimisation steps, batch size and
augmentation for every variant; each keeps its best validation-QWK weights and is scored on the test split.
CPU latency is measured in the same run for every variant (batch 1, inference mode), so the ratios between
rows are meaningful even on a noisy machine; absolute numbers are not.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from drgnet.config import ModelConfig, TrainConfig
from drgnet.data import synthetic
from drgnet.data.readers import open_dataset, split_indices
from drgnet.data.transforms import train_transforms
from drgnet.labels import LESIONS
from drgnet.model import DRGNet
from drgnet.model.reference import ReferenceConfig, ReferenceModel
from drgnet.training.data import FundusDataset
from drgnet.training.engine import fit, seed_everything
from drgnet.training.evaluate import evaluate
from drgnet.training.task import JointTask


def _budget() -> TrainConfig:
    return TrainConfig(epochs=6, max_steps_per_epoch=50, batch_size=8, lr=1e-3, augment="light")


@dataclass(frozen=True)
class QualityBenchConfig:
    """``drgnet bench quality``: the cohort, the variants and the one training budget they all get."""

    n: int = 600  # synthetic photographs (70 / 15 / 15 split)
    image_size: int = 384  # generated photograph side
    input_size: int = 256  # network input side
    style: str = "default"
    # Epochs, steps per epoch (max_steps_per_epoch), batch, lr, seed (also of the cohort and the split), workers.
    # Its model and data fields are not used: each variant builds its own network on the benchmark's cohort.
    train: TrainConfig = field(default_factory=_budget)
    device: str = "cpu"
    latency_runs: int = 10
    variants: tuple[str, ...] = (  # most important comparisons first: a cut-short run still answers them
        "drgnet",
        "reference",
        "no_constraint",
        "no_low_level_attention",
        "no_high_level_attention",
        "drgnet_random_init",
    )


def _drgnet(**changes: Any) -> Callable[[int], torch.nn.Module]:
    def build(size: int) -> torch.nn.Module:
        return DRGNet(ModelConfig(input_size=size, **changes))

    return build


def _reference(size: int) -> torch.nn.Module:
    return ReferenceModel(ReferenceConfig(input_size=size))


VARIANTS: dict[str, tuple[str, Callable[[int], torch.nn.Module]]] = {
    "drgnet": ("DRGNet (ImageNet-initialised Lite0)", _drgnet()),
    "no_low_level_attention": ("DRGNet without low-level attention", _drgnet(low_level_attention=False)),
    "no_high_level_attention": ("DRGNet without high-level attention", _drgnet(high_level_attention=False)),
    "no_constraint": ("DRGNet without lesion-grade constraint", _drgnet(lesion_grade_constraint=False)),
    "drgnet_random_init": ("DRGNet, random init (like the reference)", _drgnet(encoder_weights=None)),
    "reference": ("Reference: ResNet-50 grader + 4 binary U-Nets", _reference),
}


def _cohort(cfg: QualityBenchConfig, root: Path) -> Path:
    cohort = root / f"cohort-{cfg.style}-{cfg.n}-{cfg.image_size}-{cfg.train.seed}"
    if not (cohort / "manifest.json").is_file():
        synthetic.generate_cohort(
            cohort, n=cfg.n, size=cfg.image_size, style=cfg.style, seed=cfg.train.seed, progress=True
        )
    return cohort


@torch.inference_mode()
def cpu_latencies_ms(models: dict[str, torch.nn.Module], size: int, runs: int = 10) -> dict[str, float]:
    """Median milliseconds per image (batch 1, CPU) for each model, measured round-robin."""
    x = torch.rand(1, 3, size, size)
    for model in models.values():
        model.cpu().eval()(x)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(runs):
        for name, model in models.items():
            t0 = time.perf_counter()
            model(x)
            times[name].append(time.perf_counter() - t0)
    return {name: 1000 * sorted(t)[len(t) // 2] for name, t in times.items()}


def run(cfg: QualityBenchConfig, out: Path, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train and score every variant; writes ``out/quality.md`` and ``out/quality.json``."""
    unknown = [v for v in cfg.variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reader = open_dataset(_cohort(cfg, out), layout="synthetic")
    train_idx, val_idx, test_idx = split_indices(reader.grades, (0.7, 0.15, 0.15), seed=cfg.train.seed)
    size = cfg.input_size
    train_set = FundusDataset(
        reader, size, train_transforms(size, cfg.train.augment, seed=cfg.train.seed), indices=train_idx
    )
    val_set = FundusDataset(reader, size, None, indices=val_idx)
    test_set = FundusDataset(reader, size, None, indices=test_idx)
    log(f"split: train {len(train_set)}, val {len(val_set)}, test {len(test_set)}; device {cfg.device}")
    train_cfg = cfg.train
    rows, models = [], {}
    for name in cfg.variants:
        label, build = VARIANTS[name]
        seed_everything(cfg.train.seed)
        model = build(size)
        params = sum(p.numel() for p in model.parameters())
        log(f"== {label}: {params / 1e6:.1f} M parameters")
        task = JointTask(model, train_cfg.loss)
        result = fit(
            task, train_set, val_set, train_cfg, out / "runs" / name, progress=True, log=log, device=cfg.device
        )
        model.load_state_dict(result.best_state)
        metrics = evaluate(
            model, DataLoader(test_set, train_cfg.batch_size, num_workers=train_cfg.workers), device=cfg.device
        )
        models[name] = model.cpu().eval()
        rows.append(
            {
                "variant": name,
                "label": label,
                "qwk": metrics["qwk"],
                "accuracy": metrics["accuracy"],
                "referable_auc": metrics["referable_auc"],
                "aupr": {k: metrics["lesions"][k]["aupr"] for k in LESIONS},
                "lesion_aupr_mean": metrics["lesion_aupr_mean"],
                "params_m": params / 1e6,
                "cpu_latency_ms": float("nan"),
                "train_seconds": result.seconds,
                "best_epoch": result.best_metrics.get("epoch"),
            }
        )
        log(f"   test QWK {metrics['qwk']:.3f}, mean lesion AUPR {metrics['lesion_aupr_mean']:.3f}")
        (out / "quality.json").write_text(json.dumps({"config": dataclasses.asdict(cfg), "rows": rows}, indent=2))
    # Latency last, all variants interleaved round by round, so background load hits every row alike.
    for name, ms in cpu_latencies_ms(models, size, cfg.latency_runs).items():
        next(r for r in rows if r["variant"] == name)["cpu_latency_ms"] = ms
    (out / "quality.json").write_text(json.dumps({"config": dataclasses.asdict(cfg), "rows": rows}, indent=2))
    (out / "quality.md").write_text(markdown(cfg, rows))
    return rows


def _f(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def markdown(cfg: QualityBenchConfig, rows: list[dict[str, Any]]) -> str:
    t = cfg.train
    base = next((r for r in rows if r["variant"] == "drgnet"), rows[0] if rows else None)
    head = (
        "| variant | QWK | accuracy | referable AUC | "
        + " | ".join(f"AUPR {k}" for k in LESIONS)
        + " | params (M) | CPU ms/image | latency vs DRGNet | train s |"
    )
    lines = [
        f"# Quality benchmark ({cfg.n} synthetic images '{cfg.style}', {cfg.image_size} px generated, "
        f"{cfg.input_size} px input)",
        "",
        f"Budget per variant: {t.epochs} epochs x {t.max_steps_per_epoch} steps x batch {t.batch_size}, "
        f"lr {t.lr}, seed {t.seed}, trained on {cfg.device}; CPU latency on {platform.machine()} with "
        f"{torch.get_num_threads()} threads ({os.cpu_count()} cores). Test split scored with the best "
        "validation-QWK weights.",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for r in rows:
        ratio = r["cpu_latency_ms"] / base["cpu_latency_ms"] if base else float("nan")
        lines.append(
            f"| {r['label']} | {_f(r['qwk'])} | {_f(r['accuracy'])} | {_f(r['referable_auc'])} | "
            + " | ".join(_f(r["aupr"][k]) for k in LESIONS)
            + f" | {r['params_m']:.1f} | {r['cpu_latency_ms']:.0f} | {ratio:.2f} | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"
