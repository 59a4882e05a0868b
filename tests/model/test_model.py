"""DRGNet shapes, switches, and the ImageNet weight mapping."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from skimage.data import chelsea

from drgnet.config import ModelConfig
from drgnet.model import ATTENTION_TOKENS, DRGNet
from drgnet.model._pretrained import load_imagenet_weights, load_shipped_state_dict, translate_state_dict

CAT_CLASSES = set(range(281, 286))  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.mark.parametrize(
    "switches",
    [
        {},
        {"low_level_attention": False},
        {"high_level_attention": False},
        {"lesion_grade_constraint": False},
        {"low_level_attention": False, "high_level_attention": False, "lesion_grade_constraint": False},
    ],
)
def test_output_shapes_are_the_same_for_every_configuration(switches, tiny_config):
    torch.manual_seed(0)
    model = DRGNet(replace(tiny_config, **switches))
    out = model(torch.rand(2, 3, 64, 96))
    assert out.lesion_logits.shape == (2, 4, 64, 96)
    assert out.grade_logits.shape == (2, 5)
    assert out.lesion_grade_logits.shape == (2, 5)
    assert out.attention.shape == (2, 1, 2, 3)
    assert out.low_level_attention.shape == (2, 1, 16, 24)
    assert out.token_weights.shape == (2, len(ATTENTION_TOKENS))
    assert out.pooled.shape == (2, 32)
    torch.testing.assert_close(out.attention.sum(dim=(1, 2, 3)), torch.ones(2))
    torch.testing.assert_close(out.token_weights.sum(dim=1), torch.ones(2))


def test_bad_input_shapes_are_clear_errors(tiny_config):
    model = DRGNet(tiny_config)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 70, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(3, 64, 64))


def test_lesion_evidence_reaches_the_grade_through_both_attentions(tiny_config):
    """Changing only the lesion logits changes the grade: the lesion branch drives the grader."""
    torch.manual_seed(0)
    model = DRGNet(tiny_config).eval()
    x = torch.rand(1, 3, 64, 64)
    base = model(x).grade_logits
    with torch.no_grad():
        model.lesion_head[0].bias += torch.tensor([6.0, 0.0, 0.0, 0.0])
    assert not torch.allclose(model(x).grade_logits, base)


def test_grade_losses_reach_the_lesion_maps_damped_and_the_outputs_do_not_change(tiny_config):
    """The grading side sees the lesion maps with ``grade_gradient_to_lesions`` of its gradient: undamped, the grade
    losses drove the MA and HE logits about 100 times harder than their masks, and those maps never learnt."""
    x = torch.rand(2, 3, 64, 64)

    def grads(share):
        torch.manual_seed(0)
        model = DRGNet(replace(tiny_config, grade_gradient_to_lesions=share))
        out = model(x)
        (from_grade,) = torch.autograd.grad(
            out.grade_logits[:, 3].sum() + out.lesion_grade_logits[:, 3].sum(), out.lesion_logits, retain_graph=True
        )
        (from_masks,) = torch.autograd.grad(out.lesion_logits.sigmoid().sum(), out.lesion_logits)
        return out, from_grade, from_masks

    full, grade_full, masks_full = grads(1.0)
    damped, grade_damped, masks_damped = grads(0.05)
    for name in ("lesion_logits", "grade_logits", "lesion_grade_logits", "attention", "token_weights"):
        assert torch.equal(getattr(full, name), getattr(damped, name)), name
    assert grade_full.abs().sum() > 0
    torch.testing.assert_close(grade_damped, 0.05 * grade_full)
    torch.testing.assert_close(masks_damped, masks_full)
    with pytest.raises(ValueError, match="grade_gradient_to_lesions"):
        DRGNet(replace(tiny_config, grade_gradient_to_lesions=1.5))


def test_shipped_imagenet_weights_map_onto_timm_and_recognise_a_cat():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    load_imagenet_weights(model, "tf_efficientnet_lite0")
    image = np.asarray(Image.fromarray(chelsea()).resize((224, 224), Image.BICUBIC), dtype=np.float32) / 255
    x = (torch.from_numpy(image).permute(2, 0, 1)[None] - 0.5) / 0.5
    with torch.no_grad():
        top5 = model(x).softmax(1).topk(5).indices[0].tolist()
    assert CAT_CLASSES & set(top5), top5


def test_drgnet_encoder_starts_from_the_mapped_weights(tiny_config):
    original = load_shipped_state_dict("efficientnet_lite0")
    model = DRGNet(replace(tiny_config, encoder="efficientnet_lite0", encoder_weights="imagenet"))
    enc = model.encoder.model
    torch.testing.assert_close(enc.conv_stem.weight, original["_conv_stem.weight"])
    torch.testing.assert_close(enc.blocks[1][0].conv_pw.weight, original["_blocks.1._expand_conv.weight"])
    torch.testing.assert_close(enc.blocks[1][0].conv_pwl.weight, original["_blocks.1._project_conv.weight"])
    torch.testing.assert_close(enc.blocks[6][0].bn3.running_var, original["_blocks.15._bn2.running_var"])


def test_weight_mapping_rejects_a_mismatched_architecture():
    original = load_shipped_state_dict("efficientnet_lite0")
    wrong = timm.create_model("efficientnet_lite1", pretrained=False)
    with pytest.raises(ValueError, match="shape|does not exist|unset"):
        translate_state_dict(original, wrong)


def test_unknown_encoder_weights_are_a_clear_error():
    with pytest.raises(ValueError, match="no shipped ImageNet weights"):
        DRGNet(ModelConfig(encoder="resnet18", encoder_weights="imagenet"))
