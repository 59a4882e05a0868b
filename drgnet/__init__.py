"""DRG-Net: diabetic retinopathy grading and lesion segmentation.

The ML core. It imports nothing of ``db``, ``feedback`` or ``webapp`` (see DESIGN.md §2).
"""

__version__ = "0.1.0"
