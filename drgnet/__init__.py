"""DRG-Net: diabetic retinopathy grading and lesion segmentation.

The ML core. It imports nothing of ``db``, ``feedback`` or ``webapp`` (see DESIGN.md §2).
"""

import os

# albumentations asks PyPI for a newer version at import; no network calls from a clinical tool.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
