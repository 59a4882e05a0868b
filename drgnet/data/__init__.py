"""Data: the synthetic fundus generator, dataset readers, preprocessing and augmentations."""

from drgnet.data.sample import Sample

__all__ = ["Sample"]
