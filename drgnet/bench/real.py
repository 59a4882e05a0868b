"""``drgnet bench real``: what real photographs in training buy, measured on real photographs.

Leave-one-out over the four real IDRiD photographs with lesion masks (``../shared/data/idrid-train4``): in fold
``k`` photograph ``k`` is left out, every variant trains with the same budget, and is scored on it (the
synthetic-only variants see no real photograph, so they train once and are scored on every fold). Variants:

- ``synthetic_v1``: the old, uncalibrated synthetic generator only;
- ``synthetic``: the calibrated synthetic generator only;
- ``real``: the three other IDRiD photographs (crops and global views, ``P(grade >= 1)`` taught since every one
  shows DR) and the healthy real photographs of this fold as grade 0;
- ``mixed``: the calibrated synthetic cohort plus the real photographs, oversampled.

Per variant: per-lesion AUPR on the left-out photograph's lesion view (pooled over the folds), the left-out
photograph's grade (it shows DR: >= 1 is right), and the grades of the healthy real photographs the variant did
not train on (the shortcut "a real camera's look means DR" shows there), plus the real DR photograph of HRF,
which no variant trains on. Healthy photographs are shared out between the folds: fold ``k`` holds out those
with ``index % 4 == k``. The budget is small enough for a CPU; the absolute figures are low at that budget, the
comparison between rows is the point.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drgnet.config import ModelConfig, TrainConfig
from drgnet.data import Sample, synthetic
from drgnet.data.preprocess import load_rgb, preprocess_sample
from drgnet.data.readers import open_dataset
from drgnet.data.real_samples import DR_STEMS, idrid_train4_dir, sample_photographs
from drgnet.data.transforms import train_transforms
from drgnet.labels import LESIONS, REFERABLE_MIN_GRADE
from drgnet.metrics import LesionAccumulator
from drgnet.model import DRGNet
from drgnet.model.checkpoint import read_checkpoint_meta
from drgnet.tiling import flip_averaged, tiled_maps, tta_flips
from drgnet.training.engine import fit, seed_everything
from drgnet.training.mix import healthy_real_photographs, views_of
from drgnet.training.task import JointTask
from drgnet.training.views import Subset, ViewSource

VARIANTS: dict[str, str] = {
    "synthetic_v1": "old synthetic generator only",
    "synthetic": "calibrated synthetic only",
    "real": "real photographs only",
    "mixed": "calibrated synthetic + real",
}
#: Negatives kept per photograph for AUPR: all of a lesion view (a 20,000 sample made the AUPR of a lesion with
#: 58 pixels, IDRiD_04's microaneurysms, move with the sample).
EVERY_PIXEL = 4096 * 4096
#: The variants that train on real photographs (one model per fold); the others train once for all folds.
REAL_VARIANTS = ("real", "mixed")


def _budget() -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(input_size=128, decoder_channels=(64, 48, 32, 24, 16), embed_dim=64, lesion_fov_px=512),
        epochs=2,
        max_steps_per_epoch=20,
        batch_size=8,
        lr=2e-3,
        augment="light",
        crops_per_global=3,
        lesion_crop_fraction=0.5,
    )


@dataclass(frozen=True)
class RealBenchConfig:
    """``drgnet bench real``: the synthetic cohorts, the real-photograph weights and the one training budget."""

    n_synthetic: int = 48  # photographs per synthetic cohort (one cohort per generator)
    image_size: int = 512  # synthetic photograph side
    # Model (input size; lesion view side), epochs, steps per epoch, batch, lr, crops per global view, seed.
    train: TrainConfig = field(default_factory=_budget)
    real_weight: float = 8.0  # draw weight of each real IDRiD photograph in "mixed" (a synthetic one: 1)
    healthy_weight: float = 4.0  # draw weight of each healthy real photograph in "mixed"
    variants: tuple[str, ...] = tuple(VARIANTS)
    folds: tuple[int, ...] = (0, 1, 2, 3)  # which IDRiD photographs to leave out, in turn
    device: str = "cpu"
    # Reuse a fold's finished training in ``out/runs`` (and go on from an interrupted one's last finished epoch)
    # when it was made by the same settings: runs of some folds in separate processes, then one run of every fold
    # that trains nothing new, give the pooled table. A run folder from other settings is an error, not reused.
    resume: bool = False
    # Test-time flips of the left-out photograph's lesion maps (scoring only: a resumed run re-scores its models).
    tta: str = "none"

    def __post_init__(self) -> None:
        tta_flips(self.tta)
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
        model = self.train.model
        if model.lesion_fov_px < model.input_size:
            raise ValueError(
                f"train.model.lesion_fov_px {model.lesion_fov_px} must be at least the input size {model.input_size}"
            )


def quick_config() -> RealBenchConfig:
    """A smoke-test budget: a tiny random-init model at 64 px, a few steps, 4 synthetic photographs."""
    from drgnet.training.presets import PRESETS

    train = dataclasses.replace(_budget(), model=PRESETS["tiny"].model, epochs=1, max_steps_per_epoch=2, batch_size=2)
    return RealBenchConfig(n_synthetic=4, image_size=128, train=train, folds=(0, 1))


@dataclass
class _Data:
    idrid: list[Sample]  # at their lesion view
    healthy: list[Sample]  # at the lesion view side, as the rest
    dr_other: list[Sample]
    cohorts: dict[str, Sequence[Sample]]
    revisions: dict[str, str]  # generator revision each cohort was made with (a reused folder may be older)


def _load(cfg: RealBenchConfig, root: Path, log: Callable[[str], None]) -> _Data:
    real = idrid_train4_dir()
    if real is None:
        raise ValueError("no real IDRiD photographs: ../shared/data/idrid-train4 (DRGNET_SHARED_DIR) is absent")
    reader = open_dataset(real, layout="idrid-seg")
    bad = [k for k in cfg.folds if not 0 <= k < len(reader)]
    if bad:
        raise ValueError(f"folds {bad}: {real} holds {len(reader)} photographs")
    # Each real photograph is read and brought to its lesion view once, not once per fold and variant (a 12 MP
    # JPEG and four TIFF masks take seconds): the views are then cut from that square, no finer than it.
    side = cfg.train.model.lesion_fov_px
    idrid = [preprocess_sample(sample, side) for sample in reader]
    cohorts, revisions = {}, {}
    for generator in sorted({_generator(v) for v in cfg.variants if v != "real"}):
        path = root / f"cohort-{generator}-{cfg.n_synthetic}-{cfg.image_size}-{cfg.train.seed}"
        if not (path / "manifest.json").is_file():
            synthetic.generate_cohort(
                path, cfg.n_synthetic, size=cfg.image_size, seed=cfg.train.seed, generator=generator, progress=False
            )
        cohorts[generator] = open_dataset(path, layout="synthetic")
        today = synthetic.revision_of(generator)
        made = json.loads((path / synthetic.MANIFEST).read_text()).get("generator_revision", "unknown")
        revisions[generator] = made
        if made != today:
            log(f"{path}: reusing a cohort made by generator {made}, not today's {today} (remove it to make anew)")
    found = sample_photographs()
    dr_other = [Sample(load_rgb(found[s]), s, "real-dr", path=found[s]) for s in DR_STEMS if s in found]
    healthy = [preprocess_sample(s, side) for s in healthy_real_photographs()]
    data = _Data(idrid, healthy, [preprocess_sample(s, side) for s in dr_other], cohorts, revisions)
    log(f"{len(idrid)} IDRiD photographs, {len(data.healthy)} healthy and {len(dr_other)} other DR real photographs")
    return data


def _generator(variant: str) -> str:
    """The synthetic generator a (non-real) variant trains on."""
    return "v1" if variant == "synthetic_v1" else "v2"


def _sources(variant: str, data: _Data, fold: int, cfg: RealBenchConfig) -> list[ViewSource]:
    """What ``variant`` trains on in ``fold``."""
    mixed = variant == "mixed"
    sources = []
    if variant != "real":
        sources.append(ViewSource(data.cohorts[_generator(variant)], name="synthetic"))
    if variant in REAL_VARIANTS:
        others = [i for i in range(len(data.idrid)) if i != fold]
        sources.append(
            ViewSource(Subset(data.idrid, others), cfg.real_weight if mixed else 1.0, min_grade=1, name="idrid")
        )
        healthy = [s for i, s in enumerate(data.healthy) if i % 4 != fold % 4]
        if healthy:
            sources.append(ViewSource(healthy, cfg.healthy_weight if mixed else 1.0, grade=0, name="healthy"))
    return sources


@torch.inference_mode()
def grade_photo(model: DRGNet, sample: Sample, size: int, device: str) -> int:
    view = preprocess_sample(sample, size)
    x = torch.from_numpy(view.image).permute(2, 0, 1)[None].float().div(255.0).to(device)
    return int(model(x).grade_logits.argmax(dim=1).item())


@torch.inference_mode()
def lesion_view_probs(model: DRGNet, view: Sample, device: str, tta: str = "none") -> np.ndarray:
    """``(4, L, L)`` lesion probabilities of a lesion view, by blended tiles of the input size as in ``predict``.

    ``tta``: test-time flips averaged (:data:`drgnet.tiling.TTA_FLIPS`), as ``predict --tta`` does.
    """

    def run(tiles: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float().div(255.0).to(device)
        return torch.sigmoid(model(x).lesion_logits.float()).cpu().numpy()

    return tiled_maps(view.image, flip_averaged(run, tta), model.config.input_size, fov_mask=~view.ignore)


def run_identity(cfg: RealBenchConfig, variant: str, fold: int | None) -> dict[str, Any]:
    """What makes a fold's training what it is: every setting but which folds run, the device and ``resume``."""
    settings = dataclasses.asdict(cfg)
    for key in ("folds", "variants", "device", "resume", "tta"):  # tta: scoring only, the models are the same
        settings.pop(key)
    return json.loads(json.dumps({"variant": variant, "fold": fold, "settings": settings}))


def _check_reusable(out: Path, identity: dict[str, Any]) -> None:
    """Raise a ValueError when ``out`` holds a run made with other settings than ``identity``."""
    last = out / "last"
    if not (last / "trainer.json").is_file():
        return
    stored = read_checkpoint_meta(last).get("bench_real")
    if stored != identity:
        raise ValueError(
            f"{last}: made with other settings than this run of drgnet bench real (resume would mix them); "
            "remove the folder or choose another --out"
        )


def _train(variant: str, data: _Data, fold: int, cfg: RealBenchConfig, out: Path, log) -> tuple[DRGNet, float]:
    t = cfg.train
    seed_everything(t.seed)
    transform = None if t.augment == "none" else train_transforms(t.model.input_size, t.augment, seed=t.seed)
    views = views_of(_sources(variant, data, fold, cfg), t, transform)
    model = DRGNet(t.model)
    identity = run_identity(cfg, variant, fold if variant in REAL_VARIANTS else None)
    if cfg.resume:
        _check_reusable(out, identity)
    result = fit(
        JointTask(model, t.loss),
        views,
        None,
        t,
        out,
        resume=cfg.resume,
        progress=False,
        log=log,
        extra_meta={"bench_real": identity},
        device=cfg.device,
    )
    # Training time over every process that worked on this run (a resumed run adds to what is recorded).
    record = out / "train_seconds.json"
    before = json.loads(record.read_text())["seconds"] if cfg.resume and record.is_file() else 0.0
    record.write_text(json.dumps({"seconds": before + result.seconds}))
    return model.eval(), before + result.seconds


def _score_fold(model: DRGNet, data: _Data, fold: int, variant: str, cfg: RealBenchConfig, row: dict) -> None:
    size, device = cfg.train.model.input_size, cfg.device
    # Already the photograph's lesion view: preprocessing it a second time is not the identity (the field of view
    # is found again on the square and resampled: IDRiD_01 lost 187 of its 13,353 lesion pixels that way).
    left_out = view = data.idrid[fold]
    valid = np.asarray(view.lesion_known, bool)[:, None, None] & ~view.ignore[None]
    probs = lesion_view_probs(model, view, device, cfg.tta)
    row["_lesions"].add(probs, view.masks, valid)
    alone = LesionAccumulator(max_negatives=EVERY_PIXEL)
    alone.add(probs, view.masks, valid)
    row["photo_aupr"][left_out.name] = {k: v["aupr"] for k, v in alone.result().items()}
    row["left_out_grades"][left_out.name] = grade_photo(model, left_out, size, device)
    trained_on_healthy = variant in REAL_VARIANTS
    for i, photo in enumerate(data.healthy):
        if not trained_on_healthy or i % 4 == fold % 4:
            row["healthy_grades"].setdefault(photo.name, []).append(grade_photo(model, photo, size, device))
    for photo in data.dr_other:
        row["other_dr_grades"].setdefault(photo.name, []).append(grade_photo(model, photo, size, device))


def run(cfg: RealBenchConfig, out: Path, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train and score every variant on every fold; writes ``out/real.md`` and ``out/real.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = _load(cfg, out, log)
    rows = []
    for variant in cfg.variants:
        row: dict[str, Any] = {
            "variant": variant,
            "label": VARIANTS[variant],
            "_lesions": LesionAccumulator(max_negatives=EVERY_PIXEL),
            "left_out_grades": {},
            "photo_aupr": {},
            "healthy_grades": {},
            "other_dr_grades": {},
            "train_seconds": 0.0,
            "synthetic_generator": None if variant == "real" else data.revisions[_generator(variant)],
        }
        model = None
        for fold in cfg.folds:
            # Synthetic-only training never sees a real photograph, so every fold would train the same model.
            if model is None or variant in REAL_VARIANTS:
                run_dir = out / "runs" / variant / (f"fold{fold}" if variant in REAL_VARIANTS else "all")
                model, seconds = _train(variant, data, fold, cfg, run_dir, log)
                row["train_seconds"] += seconds
            _score_fold(model, data, fold, variant, cfg, row)
            log(f"{variant} fold {fold}: left-out grade {list(row['left_out_grades'].values())[-1]}")
        pooled = row.pop("_lesions").result()
        row["aupr"] = {k: v["aupr"] for k, v in pooled.items()}
        row["positives"] = {k: v["positives"] for k, v in pooled.items()}
        rows.append(row)
        (out / "real.json").write_text(json.dumps({"config": dataclasses.asdict(cfg), "rows": rows}, indent=2))
    (out / "real.md").write_text(markdown(cfg, rows))
    return rows


def _num(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.3f}"


def _grades(grades: dict[str, list[int]], at_least: int, word: str) -> str:
    """``"2/6 referable (grades 0 2 ...)"``: how many of the grades reach ``at_least``, and the grades."""
    flat = [g for gs in grades.values() for g in gs]
    if not flat:
        return "n/a"
    return f"{sum(g >= at_least for g in flat)}/{len(flat)} {word} (grades {' '.join(str(g) for g in flat)})"


def markdown(cfg: RealBenchConfig, rows: list[dict[str, Any]]) -> str:
    """The leave-one-out table."""
    t = cfg.train
    head = "| variant | " + " | ".join(f"AUPR {k}" for k in LESIONS)
    head += " | left-out IDRiD graded >= 1 | healthy real, held out | HRF real DR graded >= 1 | train s |"
    budget = (
        f"Budget per fold: {t.epochs} epochs x {t.max_steps_per_epoch} steps x batch {t.batch_size} at "
        f"{t.model.input_size} px, {t.crops_per_global} crops per global view from a {t.model.lesion_fov_px} px "
        f"lesion view ({t.lesion_crop_fraction:.0%} lesion-centred, centres drawn by {t.lesion_crop_balance}), "
        f"lr {t.lr}, seed {t.seed}; "
        f"{cfg.n_synthetic} synthetic photographs at {cfg.image_size} px; real weight {cfg.real_weight}, healthy "
        f"weight {cfg.healthy_weight} (mixed); trained on {cfg.device}. AUPR pooled over the left-out photographs"
        + (f", lesion maps averaged over the test-time flips {cfg.tta!r}" if cfg.tta != "none" else "")
        + "; train s: all folds together (the synthetic-only variants train once for every fold)."
    )
    made = sorted({r["synthetic_generator"] for r in rows if r.get("synthetic_generator")})
    if made:
        budget += f" Synthetic photographs made by generator {', '.join(made)}."
    title = f"# Real photographs, leave-one-out over {len(cfg.folds)} IDRiD photographs"
    lines = [title, "", budget, "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        left = {name: [g] for name, g in r["left_out_grades"].items()}
        lines.append(
            f"| {r['label']} | "
            + " | ".join(_num(r["aupr"][k]) for k in LESIONS)
            + f" | {_grades(left, 1, 'DR')} | {_grades(r['healthy_grades'], REFERABLE_MIN_GRADE, 'referable')} | "
            + f"{_grades(r['other_dr_grades'], 1, 'DR')} | {r['train_seconds']:.0f} |"
        )
    lines += ["", "Each left-out photograph alone (pooling above weighs them by their lesion pixels):", ""]
    lines += ["| variant | left out | " + " | ".join(f"AUPR {k}" for k in LESIONS) + " |"]
    lines += ["|---|---|" + "---:|" * len(LESIONS)]
    for r in rows:
        for name, aupr in r["photo_aupr"].items():
            lines.append(f"| {r['label']} | {name} | " + " | ".join(_num(aupr[k]) for k in LESIONS) + " |")
    return "\n".join(lines) + "\n"
