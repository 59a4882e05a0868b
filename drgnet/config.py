"""Frozen configuration dataclasses: the model, its losses, its training and its adaptation to a camera.

One tree, every default written once: ``TrainConfig`` and ``TransferConfig`` nest ``ModelConfig`` /
``LossConfig`` (feedback's ``RetrainConfig`` nests a ``LossConfig`` too). Every switch that changes what a
checkpoint means lives here, so a checkpoint's JSON config rebuilds exactly the network that wrote it.
``to_dict`` / ``from_dict`` round-trip through plain JSON types; :func:`load_config` reads a JSON or TOML file
and :func:`parse_settings` / :func:`override` apply the ``--set key.path=value`` options of every command.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ModelConfig:
    """The DRGNet architecture."""

    encoder: str = "tf_efficientnet_lite0"  # any timm model with features_only support
    encoder_weights: str | None = "imagenet"  # "imagenet" (shipped lite0/1/2 weights), a .safetensors path, or None
    input_size: int = 512  # side of the square network input, pixels
    # Side of the FOV square the lesion decoder learned at (crops of it in training, tiles of it at inference); 0: the
    # global view only. A model trained without crops (``TrainConfig.crops_per_global == 0``) keeps 0, so its maps are
    # never made at a scale it has not seen; the "full" preset trains crops of a 1024 px view (a median MA >= 4 px).
    lesion_fov_px: int = 0
    decoder_channels: tuple[int, ...] = (128, 64, 32, 24, 16)  # U-Net decoder width per stage, deepest first
    embed_dim: int = 128  # width of lesion / global descriptors in the high-level attention
    low_level_attention: bool = True  # lesion-driven spatial gates on stride-4 and stride-8 features
    high_level_attention: bool = True  # lesion-aware + global pooling fused by learned weights
    lesion_grade_constraint: bool = True  # a lesion-only grade head that must agree with the fused grade
    # Share of the grading losses' gradient that flows back into the lesion maps through the attention, the
    # lesion-only grade head and the constraint (forward values are the same for any value). At 1 the grade losses
    # outweigh the masks 40-190 fold on the MA/HE logits and those maps never learn their lesions (measured:
    # docs/benchmarks.md, "Why the MA and HE maps did not learn"); 0 would leave grade-only corrections no way to
    # teach the lesion branch.
    grade_gradient_to_lesions: float = 0.05
    dropout: float = 0.2  # before the grade heads
    # Local contrast normalisation of the input (drgnet.model._contrast): each pixel against a Gaussian mean of its
    # surroundings this wide, in input pixels; 0: off (the photograph as it is). Removes camera colour casts and uneven
    # illumination, keeps lesions (a departure from their own surroundings).
    local_contrast_sigma_px: float = 0.0
    local_contrast_gain: float = 4.0


@dataclass(frozen=True)
class LossConfig:
    """Weights and forms of the joint training objective."""

    lesion_weight: float = 1.0  # Dice + focal on the four lesion maps
    lesion_focal_gamma: float = 2.0  # 0 gives plain BCE
    lesion_pos_weight: float = 1.0  # extra weight of positive pixels in the focal/BCE term
    # Dice "image" (one per image and lesion, averaged) or "batch" (one per lesion over the batch's pixels pooled)
    lesion_dice_over: str = "image"
    grade_weight: float = 1.0
    grade_loss: str = "ordinal"  # "ce", "ordinal" (CE plus squared distance of the expected grade) or "gce"
    gce_q: float = 0.7  # generalised cross-entropy: towards 0 like CE, 1 most robust to wrong grades
    ordinal_weight: float = 0.5  # weight of the squared-distance term when grade_loss == "ordinal"
    label_smoothing: float = 0.0
    constraint_weight: float = 0.2  # symmetric KL between lesion-only and fused grade distributions
    lesion_grade_weight: float = 0.5  # CE of the lesion-only grade head itself
    attention_weight: float = 0.1  # attention mass outside lesions, where masks exist


@dataclass(frozen=True)
class MixSource:
    """One more source of training photographs for ``TrainConfig.mix`` (all of it trains; none is split off)."""

    data: str = (
        ""  # dataset folder, "real-healthy" (the healthy real photographs found here, drgnet.data.real_samples) or
        # "idrid-train4" (the four real IDRiD photographs of the shared data folder)
    )
    layout: str = "auto"
    weight: float = 1.0  # how often each of its photographs is drawn, against 1 for a photograph of `data`
    grade: int | None = None  # the grade of photographs its reader gives none (e.g. 0 for healthy eyes)
    min_grade: int = 0  # for ungraded photographs known to show DR (IDRiD's lesion set): taught P(grade >= this)
    exclude: tuple[str, ...] = ()  # photograph names left out (held out for testing), e.g. ["DRIVE_40"]


@dataclass(frozen=True)
class TrainConfig:
    """A training run: data, budget, optimiser."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: str = ""  # dataset folder (any layout drgnet.data.readers can open)
    layout: str = "auto"
    val_data: str = ""  # separate validation folder; empty: split `data`
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train / val / test when splitting
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    encoder_lr_scale: float = 0.3  # the pretrained encoder learns slower than the new heads
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # "cosine" (5% linear warm-up, cosine decay) or "constant"
    augment: str = "default"  # "none", "light", "default", "strong"
    seed: int = 0
    workers: int = 0  # data-loading processes
    max_steps_per_epoch: int = 0  # 0: the whole training set each epoch; mixed views (drawn): exactly this many
    grade_balanced_sampling: bool = True
    # High-resolution crops: per global view (whole FOV at input size, with the grade) this many crops of input
    # size from the FOV resampled to model.lesion_fov_px, lesion masks only (a crop does not carry the grade).
    crops_per_global: int = 0  # 0: global views only
    lesion_crop_fraction: float = 0.5  # share of crops centred on an annotated lesion pixel (others anywhere in FOV)
    # How a lesion-centred crop picks its centre: "pixel" (any lesion pixel: big exudate fields centre most crops) or
    # "class" (a lesion class present in the photograph first, each equally likely: microaneurysms as often as EX).
    lesion_crop_balance: str = "pixel"
    mix: tuple[MixSource, ...] = ()  # more training sources beside `data`, e.g. real photographs oversampled


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as JSON-ready nested dicts (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a config dataclass from ``to_dict`` output, rejecting unknown keys by name."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        kwargs[key] = _coerce(hints[key], value, f"{cls.__name__}.{key}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value)
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        item = (typing.get_args(hint) or (None,))[0]
        if dataclasses.is_dataclass(item):
            return tuple(v if isinstance(v, item) else from_dict(item, v) for v in value)
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


@dataclass(frozen=True)
class TransferConfig:
    """Adapting a trained model to a new camera with unlabelled target photographs (``drgnet adapt``)."""

    steps: int = 200  # optimisation steps; each sees one source and one target batch
    batch_size: int = 8
    lr: float = 1e-4  # the model's learning rate (small: it is already trained)
    encoder_lr_scale: float = 1.0  # the encoder must move too: the camera shift is in its low-level features
    weight_decay: float = 1e-4
    loss: LossConfig = field(default_factory=LossConfig)  # the supervised loss on source batches
    wasserstein_weight: float = 0.1  # minibatch optimal transport between pooled source and target features
    wasserstein_method: str = "emd"  # "emd" (exact, ot.emd2) or "sliced" (for large batches)
    sliced_projections: int = 64
    entropy_weight: float = 0.05  # direct entropy of target lesion maps and grade distribution
    adversarial_weight: float = 0.01  # ADVENT: fool a discriminator on target self-information maps
    discriminator_lr: float = 1e-4
    ramp_steps: int = 50  # transfer weights grow linearly from 0 over these steps
    augment: str = "light"
    seed: int = 0
    workers: int = 0


def read_settings(path: Path) -> dict[str, Any]:
    """The settings of a JSON or TOML file (by suffix) as nested dicts, not yet checked against a config.

    Raises:
        ValueError: naming the file, when it cannot be read or parsed or does not hold a table of settings.
    """
    path = Path(path)
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read settings ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a table of settings (a JSON object), got {type(data).__name__}")
    return data


def dotted_settings(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys, ``{"loss": {"gce_q": 0.5}}`` -> ``{"loss.gce_q": 0.5}``: for :func:`override`,
    which then changes only the settings named and keeps the rest of ``loss`` (a whole table would replace it)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(dotted_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_config(cls: type[T], path: Path) -> T:
    """A config dataclass from a JSON or TOML file (by suffix); errors name the file and the bad key."""
    data = read_settings(path)
    try:
        return from_dict(cls, data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def load_train_config(path: Path) -> TrainConfig:
    """Read a training config from a JSON (or TOML) file."""
    return load_config(TrainConfig, path)


def _field_hint(cls: type, path: str) -> Any:
    """The type of the field ``path`` (``"loss.grade_weight"``) of ``cls``; unknown names are refused."""
    hint: Any = cls
    walked: list[str] = []
    for part in path.split("."):
        if not dataclasses.is_dataclass(hint):
            raise ValueError(f"{path}: {'.'.join(walked)} is a single setting, it has no {part!r}")
        hints = typing.get_type_hints(hint)
        names = [f.name for f in dataclasses.fields(hint)]
        if part not in names:
            where = ".".join(walked) or hint.__name__
            raise ValueError(f"unknown setting {path!r} ({where} has no {part!r}); valid: {', '.join(names)}")
        hint = hints[part]
        walked.append(part)
    return hint


def _parse_text(hint: Any, text: str, where: str) -> Any:
    """A ``--set`` value typed by its field: ``true``/``false``, numbers, ``null`` for optional, lists as JSON
    or comma-separated."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if text.strip().lower() in ("null", "none") and len(options) < len(typing.get_args(hint)):
            return None
        return _parse_text(options[0], text, where)
    if typing.get_origin(hint) is tuple and not text.lstrip().startswith("["):
        # A bare comma-separated list, e.g. --set target_styles=clinic_b,smartphone
        item = typing.get_args(hint)[0] if typing.get_args(hint) else str
        return tuple(_parse_text(item, part.strip(), where) for part in text.split(",") if part.strip())
    try:
        if hint is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(text)
            return lowered in ("true", "1", "yes", "on")
        if hint in (int, float):
            return hint(text)
        if hint is str:
            return text
        return json.loads(text)  # tuples (JSON lists) and nested groups (JSON objects)
    except ValueError as exc:
        name = getattr(hint, "__name__", str(hint))
        raise ValueError(f"{where}: {text!r} is not a valid {name}") from exc


def parse_settings(pairs: Iterable[str], cls: type) -> dict[str, Any]:
    """``--set key.path=value`` options as ``{key.path: typed value}``, checked against the fields of ``cls``.

    Raises:
        ValueError: a pair without ``=``, an unknown key (the valid ones listed) or a value of the wrong type.
    """
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: write KEY=VALUE, e.g. --set lr=0.001 or --set loss.grade_weight=2")
        settings[key] = _parse_text(_field_hint(cls, key), text, key)
    return settings


def override(config: T, settings: Mapping[str, Any]) -> T:
    """``config`` with the fields named by dotted paths replaced (values coerced and checked by field type)."""
    for path, value in settings.items():
        hint = _field_hint(type(config), path)
        if isinstance(value, str) and hint is not str:
            value = _parse_text(hint, value, path)
        config = _replace_path(config, path.split("."), _coerce(hint, value, path))
    return config


def _replace_path(config: Any, parts: list[str], value: Any) -> Any:
    head = parts[0]
    if len(parts) > 1:
        value = _replace_path(getattr(config, head), parts[1:], value)
    return dataclasses.replace(config, **{head: value})


def build_config(base: T, path: Path | None = None, settings: Iterable[str] = ()) -> T:
    """What a command runs with: ``base`` (a preset or the defaults), or the file ``path``, then ``--set`` pairs."""
    cls = type(base)
    config = load_config(cls, path) if path is not None else base
    return override(config, parse_settings(settings, cls))
