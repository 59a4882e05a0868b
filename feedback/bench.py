"""Feedback benchmark (``drgnet bench feedback``): does learning from noisy corrections help on a new camera?

A model trained on one camera style predicts K photographs of another style; a simulated expert
(:mod:`feedback.simulate`) corrects them at several noise levels, with each kind of correction (grade-only,
partial strokes, full masks). For every (noise, kind) the same source model is fine-tuned twice with the same
budget: our retraining (GCE, small-loss selection, replay of source data, EMA teacher, tolerance band) and naive
fine-tuning (CE / BCE on the corrections alone). Reported: target QWK and mean lesion AUPR before and after (on
labelled target photographs never corrected), the change on a source hold-out (forgetting) and retraining time.
The database is not involved: the corrections go straight to weak labels, exactly as the worker builds them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from drgnet.cli._common import config_option, fail, set_option, settings_of

METHODS = ("ours", "ours-no-map-teacher", "naive")


def method_config(method: str, robust: Any) -> tuple[Any, bool]:
    """The retraining settings of a benchmark method, and whether it replays source data.

    ``ours``, ``naive`` (plain fine-tuning), ``ours-no-map-teacher``, or either base with overrides of
    :class:`feedback.retrain.RetrainConfig` fields for ablations: ``ours:tolerance_px=0+lesion_focal_gamma=0``.

    Raises:
        ValueError: an unknown method or field.
    """
    from feedback.retrain import RetrainConfig

    name, _, overrides = method.partition(":")
    if name == "ours-no-map-teacher":
        name, overrides = "ours", "+".join(x for x in ("lesion_consistency_weight=0", overrides) if x)
    if name not in ("ours", "naive"):
        raise ValueError(f"unknown method {method!r}; choose {', '.join(METHODS)}, optionally with :FIELD=VALUE+...")
    base = robust if name == "ours" else robust.naive()
    params = RetrainConfig.parse_settings(filter(None, overrides.split("+")))
    cfg = RetrainConfig.from_params(params, base=base)
    return cfg, name == "ours" and cfg.replay_per_batch > 0


@dataclass(frozen=True)
class FeedbackBenchConfig:
    n_source: int = 200  # source photographs: 80 % train, 20 % source hold-out
    n_corrected: int = 40  # K: target photographs that get corrections
    n_target_test: int = 60  # labelled target photographs, never corrected
    image_size: int = 192
    input_size: int = 128
    source_style: str = "default"
    target_style: str = "smartphone"
    source_epochs: int = 4
    source_steps_per_epoch: int = 25
    retrain_steps: int = 40
    batch_size: int = 8
    noise_levels: tuple[float, ...] = (0.0, 0.2, 0.4)
    kinds: tuple[str, ...] = ("grade-only", "partial", "full")
    methods: tuple[str, ...] = ("ours", "naive")  # see method_config for ablations
    pretrained: bool = True  # ImageNet-initialised encoder (shipped weights)
    seed: int = 0
    device: str = "cpu"


def _cohort(root: Path, n: int, size: int, style: str, seed: int) -> Path:
    from drgnet.data import synthetic

    path = root / f"{style}-{n}-{size}-{seed}"
    if not (path / "manifest.json").is_file():
        synthetic.generate_cohort(path, n=n, size=size, style=style, seed=seed, progress=False)
    return path


def _scores(model: Any, dataset: Any, batch_size: int) -> dict[str, float]:
    from feedback.retrain import holdout_metrics

    m = holdout_metrics(model, {"x": dataset}, batch_size)["x"]
    return {"qwk": m["qwk"], "aupr": m["lesion_aupr_mean"]}


def _train_source(cfg: FeedbackBenchConfig, source: Any, train_idx: Any, out: Path, log: Callable[[str], None]) -> Any:
    """The source model, trained on the source camera's photographs (best epoch, in eval mode)."""
    from drgnet.config import ModelConfig, TrainConfig
    from drgnet.data.transforms import train_transforms
    from drgnet.model import DRGNet
    from drgnet.training.data import FundusDataset
    from drgnet.training.engine import fit, seed_everything
    from drgnet.training.task import JointTask

    size = cfg.input_size
    seed_everything(cfg.seed)
    model_cfg = ModelConfig(
        encoder_weights="imagenet" if cfg.pretrained else None,
        input_size=size,
        decoder_channels=(48, 32, 24, 16, 8),
        embed_dim=48,
    )
    model = DRGNet(model_cfg)
    log(f"training the source model on '{cfg.source_style}' ({len(train_idx)} photographs)")
    t0 = time.perf_counter()
    result = fit(
        JointTask(model),
        FundusDataset(source, size, train_transforms(size, "light", seed=cfg.seed), indices=train_idx),
        None,
        TrainConfig(
            model=model_cfg,
            epochs=cfg.source_epochs,
            max_steps_per_epoch=cfg.source_steps_per_epoch,
            batch_size=cfg.batch_size,
            lr=2e-3,
            seed=cfg.seed,
        ),
        out / "source-run",
        progress=False,
        log=log,
        device=cfg.device,
    )
    model.load_state_dict(result.best_state)
    model.eval()
    log(f"source model trained in {time.perf_counter() - t0:.0f} s")
    return model


def _corrected_images(corrections: list[tuple[Any, Any]], tolerance_px: int) -> list[Any]:
    """The simulated expert's corrections as the retraining's weak labels, one annotator per photograph."""
    from feedback.retrain import CorrectedImage
    from feedback.weak_labels import combine_votes, vote_from_masks

    items = []
    for sample, c in corrections:
        vote = vote_from_masks(1, c.kind, c.grade, c.masks, sample.image.shape[:2], tolerance_px)
        label = combine_votes(len(items), [vote], {})
        if label is not None:
            items.append(CorrectedImage(sample.image, label))
    return items


def run(cfg: FeedbackBenchConfig, out: Path, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train the source model once, then retrain it per (noise, kind, method) and score every result.

    Returns:
        One row per (noise, kind, method), also written to ``out/feedback.json`` and ``out/feedback.md``.
    """
    from drgnet.data.readers import open_dataset, split_indices
    from drgnet.data.transforms import train_transforms
    from drgnet.inference import Predictor
    from drgnet.training.data import FundusDataset
    from feedback.retrain import CorrectionDataset, ReplayDataset, RetrainConfig, finetune
    from feedback.simulate import ExpertNoise, SimulatedExpert

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    size = cfg.input_size
    source_dir = _cohort(out / "data", cfg.n_source, cfg.image_size, cfg.source_style, cfg.seed)
    corrected_dir = _cohort(out / "data", cfg.n_corrected, cfg.image_size, cfg.target_style, cfg.seed + 100)
    test_dir = _cohort(out / "data", cfg.n_target_test, cfg.image_size, cfg.target_style, cfg.seed + 200)
    source = open_dataset(source_dir, layout="synthetic")
    train_idx, holdout_idx, _ = split_indices(source.grades, (0.8, 0.2, 0.0), seed=cfg.seed)
    source_holdout = FundusDataset(source, size, None, indices=holdout_idx)
    target_test = FundusDataset(open_dataset(test_dir, layout="synthetic"), size, None)

    model = _train_source(cfg, source, train_idx, out, log)
    source_state = copy.deepcopy(model.state_dict())
    before = {"target": _scores(model, target_test, 16), "source": _scores(model, source_holdout, 16)}
    log(f"before: target QWK {before['target']['qwk']:.3f} AUPR {before['target']['aupr']:.3f}")

    predictor = Predictor(model)
    predictions = []
    for sample in open_dataset(corrected_dir, layout="synthetic"):
        p = predictor.predict(sample.image, source=sample.name)
        predictions.append((sample, p.lesion_masks() > 0, p.fov_mask))
    robust_cfg = RetrainConfig(
        steps=cfg.retrain_steps, batch_size=cfg.batch_size, seed=cfg.seed, device=cfg.device, lr=5e-4
    )

    rows: list[dict[str, Any]] = []
    for noise in cfg.noise_levels:
        for kind in cfg.kinds:
            expert = SimulatedExpert(ExpertNoise.level(noise), seed=cfg.seed + int(noise * 1000))
            corrections = [
                (sample, expert.correct(kind, sample.grade, sample.masks, pred, fov))
                for sample, pred, fov in predictions
            ]
            for method in cfg.methods:
                mcfg, replays = method_config(method, robust_cfg)
                # Each row replays the same augmented source batches: rows differ only by their method.
                augment = train_transforms(size, "light", seed=cfg.seed)
                rep = ReplayDataset(FundusDataset(source, size, augment, indices=train_idx)) if replays else None
                items = _corrected_images(corrections, mcfg.tolerance_px)
                model.load_state_dict(source_state)
                t = time.perf_counter()
                tuned = finetune(model, CorrectionDataset(items, size, flip=True, seed=cfg.seed), rep, mcfg)
                seconds = time.perf_counter() - t
                after = {"target": _scores(tuned, target_test, 16), "source": _scores(tuned, source_holdout, 16)}
                rows.append(_row(noise, kind, method, before, after, seconds))
                log(_row_line(rows[-1]))
                (out / "feedback.json").write_text(
                    json.dumps({"config": dataclasses.asdict(cfg), "rows": rows}, indent=2, default=float)
                )
    (out / "feedback.md").write_text(markdown(cfg, rows))
    return rows


def _row(noise: float, kind: str, method: str, before: dict, after: dict, seconds: float) -> dict[str, Any]:
    return {
        "noise": noise,
        "kind": kind,
        "method": method,
        "target_qwk_before": before["target"]["qwk"],
        "target_qwk_after": after["target"]["qwk"],
        "target_aupr_before": before["target"]["aupr"],
        "target_aupr_after": after["target"]["aupr"],
        "source_qwk_change": _diff(after["source"]["qwk"], before["source"]["qwk"]),
        "source_aupr_change": _diff(after["source"]["aupr"], before["source"]["aupr"]),
        "seconds": seconds,
    }


def _row_line(row: dict[str, Any]) -> str:
    return (
        f"noise {row['noise']:.0%} {row['kind']:10s} {row['method']:5s}: target QWK {_f(row['target_qwk_after'])} "
        f"AUPR {_f(row['target_aupr_after'])}  source dQWK {_f(row['source_qwk_change'])}  {row['seconds']:.0f} s"
    )


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _f(v: float | None, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def markdown(cfg: FeedbackBenchConfig, rows: list[dict[str, Any]]) -> str:
    lines = [
        f"# Feedback benchmark: source '{cfg.source_style}' -> corrections on '{cfg.target_style}'",
        "",
        f"Source model: {cfg.n_source} photographs (80 % train, 20 % source hold-out), "
        f"{cfg.source_epochs}x{cfg.source_steps_per_epoch} steps. K = {cfg.n_corrected} corrected target photographs, "
        f"{cfg.n_target_test} labelled target test photographs. {cfg.retrain_steps} retraining steps, batch "
        f"{cfg.batch_size}, {cfg.input_size} px, seed {cfg.seed}, device {cfg.device}. Noise p: grade flips p, "
        "border errors p, missed lesions p/2, spurious strokes p. ours = GCE + small-loss selection + replay + EMA "
        "teacher (grades and, on unlabelled pixels, lesion maps) + tolerance band; ours-no-map-teacher = ours "
        "without the lesion-map teacher term; naive = CE/BCE on the corrections only.",
        "",
        "| noise | correction | method | target QWK before | after | target AUPR before | after | "
        "source dQWK | source dAUPR | seconds |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['noise']:.0%} | {r['kind']} | {r['method']} | {_f(r['target_qwk_before'])} | "
            f"{_f(r['target_qwk_after'])} | {_f(r['target_aupr_before'])} | {_f(r['target_aupr_after'])} | "
            f"{_f(r['source_qwk_change'], True)} | {_f(r['source_aupr_change'], True)} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def bench_feedback(
    config: Path | None = config_option("feedback.bench.FeedbackBenchConfig"),
    settings: list[str] = set_option(),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: the config's)."),
    out: Path = typer.Option(Path("runs/bench/feedback"), "--out", help="Folder for feedback.md and .json."),
) -> None:
    """Learning from simulated corrections on a new camera: ours vs naive fine-tuning, by noise and kind.

    E.g. --set n_corrected=20 --set noise_levels=0 --set kinds=partial
    --set methods=ours,naive,ours:tolerance_px=0 (methods: ours, naive, ours-no-map-teacher, or ours:FIELD=VALUE+...).
    """
    from feedback.retrain import RetrainConfig

    cfg = settings_of(FeedbackBenchConfig(), config, settings)
    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
    for method in cfg.methods:
        try:
            method_config(method, RetrainConfig())
        except ValueError as exc:
            fail(str(exc))
    rows = run(cfg, out, log=typer.echo)
    typer.echo(markdown(cfg, rows))
    typer.echo(f"wrote {out / 'feedback.md'}")
