"""DRGNet and its parts."""

from drgnet.model.drgnet import ATTENTION_TOKENS, DRGNet, ModelOutput, upsample_attention

__all__ = ["ATTENTION_TOKENS", "DRGNet", "ModelOutput", "upsample_attention"]
