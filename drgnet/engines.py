"""Inference engines for batches of preprocessed photographs: PyTorch and ONNX Runtime, one interface.

An engine takes a ``(B, S, S, 3)`` uint8 RGB batch (``Preprocessed.image`` stacked) and returns the network's
raw outputs as numpy: grade logits ``(B, 5)``, lesion logits ``(B, 4, S, S)`` and the high-level attention
``(B, 1, S/32, S/32)``. ``drgnet.inference.model_maps`` turns them into probabilities the same way for every
engine, so screening results do not depend on which engine produced them beyond float rounding.

The ONNX model (``export_onnx``) takes float ``[0, 1]`` NCHW input at the checkpoint's input size with a
dynamic batch axis, and carries the checkpoint's model config and version in its metadata, so a screening
machine needs only the ``.onnx`` file and ONNX Runtime.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from drgnet.config import ModelConfig, from_dict, to_dict

#: Names of the ONNX model's input and outputs.
ONNX_INPUT = "images"
ONNX_OUTPUTS = ("grade_logits", "lesion_logits", "attention")
ONNX_OPSET = 17


@dataclass
class EngineOutput:
    """Raw network outputs of one batch, float32 numpy."""

    grade_logits: np.ndarray  # (B, 5)
    lesion_logits: np.ndarray  # (B, 4, S, S)
    attention: np.ndarray  # (B, 1, S/32, S/32)


class Engine(Protocol):
    name: str
    input_size: int
    model_version: str
    lesion_fov_px: int  # side of the lesion view the model was made for (0: lesion maps from the global view)

    def __call__(self, images: np.ndarray) -> EngineOutput: ...


def _check_batch(images: np.ndarray, size: int) -> np.ndarray:
    a = np.asarray(images)
    if a.ndim != 4 or a.shape[1:] != (size, size, 3):
        raise ValueError(f"expected a (B, {size}, {size}, 3) uint8 batch, got {a.shape}")
    return a


class TorchEngine:
    """A DRGNet (or any model returning ``ModelOutput``) under ``torch.inference_mode``.

    Args:
        model: The network; put in eval mode here.
        model_version: Identifier written beside each result.
        channels_last: Run in NHWC memory format: a uint8 NHWC batch becomes the input without a copy, and
            oneDNN's convolutions on CPU are faster on it.
    """

    name = "torch"

    def __init__(self, model: nn.Module, model_version: str = "", channels_last: bool = True) -> None:
        self.model = model.eval()
        self.input_size = int(model.config.input_size)
        self.model_version = model_version
        self.lesion_fov_px = int(getattr(model.config, "lesion_fov_px", 0))
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    @classmethod
    def from_checkpoint(cls, path: str | Path, channels_last: bool = True) -> TorchEngine:
        from drgnet.model.checkpoint import load_checkpoint

        model, meta = load_checkpoint(Path(path))
        return cls(model, model_version=checkpoint_version(meta), channels_last=channels_last)

    def tensor(self, images: np.ndarray) -> torch.Tensor:
        """The uint8 NHWC batch as the model's float [0, 1] NCHW input (channels-last when enabled)."""
        x = torch.from_numpy(np.ascontiguousarray(_check_batch(images, self.input_size))).permute(0, 3, 1, 2)
        x = x.float().div_(255.0)  # keeps the NHWC strides: this is the channels-last layout already
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def __call__(self, images: np.ndarray) -> EngineOutput:
        with torch.inference_mode():
            out = self.model(self.tensor(images))
            return EngineOutput(
                grade_logits=out.grade_logits.float().numpy(),
                lesion_logits=out.lesion_logits.float().contiguous().numpy(),
                attention=out.attention.float().contiguous().numpy(),
            )


class OnnxEngine:
    """An exported DRGNet on ONNX Runtime (CPU).

    Args:
        path: ``.onnx`` file written by ``export_onnx``.
        threads: Intra-op threads (0: ONNX Runtime's default, one per core).
    """

    name = "onnx"

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such ONNX model (write one with `drgnet export-onnx CKPT --out FILE`)")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types
            raise ValueError(f"{path}: ONNX Runtime cannot load it ({exc})") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        if [i.name for i in inputs] != [ONNX_INPUT] or outputs != list(ONNX_OUTPUTS):
            raise ValueError(f"{path}: not a DRG-Net ONNX model (want input {ONNX_INPUT!r}, outputs {ONNX_OUTPUTS})")
        size = inputs[0].shape[-1]
        self.input_size = int(meta.get("input_size", size if isinstance(size, int) else 0))
        if not self.input_size:
            raise ValueError(f"{path}: the model's input size is unknown (no static width, no metadata)")
        self.model_version = meta.get("model_version", "")
        self.lesion_fov_px = _lesion_fov_px(meta, path)
        self.path = path

    def __call__(self, images: np.ndarray) -> EngineOutput:
        a = _check_batch(images, self.input_size)
        x = np.ascontiguousarray(a.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
        grade, lesion, attention = self.session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: x})
        return EngineOutput(grade_logits=grade, lesion_logits=lesion, attention=attention)


def _lesion_fov_px(meta: dict[str, str], path: Path) -> int:
    """The lesion-view side of an exported model's config (a missing field takes ``ModelConfig``'s default, as a
    checkpoint's does)."""
    try:
        return from_dict(ModelConfig, json.loads(meta.get("model_config", "{}"))).lesion_fov_px
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: the model config in its metadata is unreadable ({exc})") from exc


def checkpoint_version(meta: dict) -> str:
    """The short identifier of a checkpoint (its version name, else the first 12 hex of its weights' sha256)."""
    return str(meta.get("version_name") or str(meta.get("weights_sha256", ""))[:12])


class _Outputs(nn.Module):
    """The three outputs screening needs, as a tuple (ONNX has no dataclasses)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(images)
        return out.grade_logits, out.lesion_logits, out.attention


@dataclass(frozen=True)
class ExportReport:
    path: Path
    input_size: int
    max_prob_diff: float  # grade probabilities, ONNX Runtime vs PyTorch, on a random batch
    max_lesion_diff: float  # lesion probabilities


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = ONNX_OPSET, verify: bool = True) -> ExportReport:
    """Export a checkpoint to ONNX with a dynamic batch axis, and check ONNX Runtime agrees with PyTorch.

    Uses the TorchScript-based exporter: EfficientNet-Lite's TensorFlow-style "same" padding is computed from
    the input's shape, which that exporter folds into constants at the fixed input size.

    Args:
        checkpoint: Checkpoint folder.
        out: ``.onnx`` file to write (replaced atomically).
        opset: ONNX opset (17 or later).
        verify: Run a random batch of 2 through both and raise if they disagree beyond float noise.

    Returns:
        Where it was written and the measured disagreement.
    """
    import onnx

    from drgnet.model.checkpoint import load_checkpoint

    if opset < 17:
        raise ValueError(f"opset {opset} is too old; use 17 or later")
    model, meta = load_checkpoint(Path(checkpoint))
    model.eval()
    size = int(model.config.input_size)
    wrapper = _Outputs(model).eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    example = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    axes = {name: {0: "batch"} for name in (ONNX_INPUT, *ONNX_OUTPUTS)}
    with warnings.catch_warnings():
        # Shape arithmetic traced into constants is intended: only the batch axis is dynamic.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            wrapper,
            (example,),
            str(tmp),
            input_names=[ONNX_INPUT],
            output_names=list(ONNX_OUTPUTS),
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    model.eval()  # the exporter restores the wrapper's mode; keep the model in eval for the check below
    proto = onnx.load(str(tmp))
    onnx.checker.check_model(proto)
    metadata = {
        "format": "drgnet-onnx",
        "input_size": str(size),
        "model_version": checkpoint_version(meta),
        "weights_sha256": str(meta.get("weights_sha256", "")),
        "model_config": json.dumps(to_dict(model.config), sort_keys=True),
    }
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(tmp))
    tmp.replace(out)

    prob_diff, lesion_diff = _verify_export(model, out, size) if verify else (0.0, 0.0)
    return ExportReport(out, size, prob_diff, lesion_diff)


def _verify_export(model: nn.Module, path: Path, size: int) -> tuple[float, float]:
    """Largest grade- and lesion-probability differences, ONNX Runtime vs PyTorch, on a random batch of 2.

    Raises:
        ValueError: They disagree beyond float noise: the export is not usable.
    """
    images = (np.random.default_rng(0).random((2, size, size, 3)) * 255).astype(np.uint8)
    ref = TorchEngine(model, channels_last=False)(images)
    got = OnnxEngine(path)(images)

    def probs(out: EngineOutput) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.softmax(torch.from_numpy(out.grade_logits), 1), torch.sigmoid(torch.from_numpy(out.lesion_logits))

    (ref_grade, ref_lesion), (got_grade, got_lesion) = probs(ref), probs(got)
    prob_diff = float((ref_grade - got_grade).abs().max())
    lesion_diff = float((ref_lesion - got_lesion).abs().max())
    if prob_diff > 1e-4 or lesion_diff > 1e-3:
        raise ValueError(
            f"{path}: ONNX Runtime disagrees with PyTorch (grade probabilities by {prob_diff:.2e}, lesion "
            f"probabilities by {lesion_diff:.2e}); the export is not usable"
        )
    return prob_diff, lesion_diff


__all__ = [
    "ONNX_INPUT",
    "ONNX_OPSET",
    "ONNX_OUTPUTS",
    "Engine",
    "EngineOutput",
    "ExportReport",
    "OnnxEngine",
    "TorchEngine",
    "checkpoint_version",
    "export_onnx",
]
