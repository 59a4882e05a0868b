"""How lesion corrections are stored: the one convention the review app writes and the retraining job reads.

Every mask is a single-channel uint8 PNG in the artifact store (:meth:`db.artifacts.ArtifactStore.put_png`), at the
resolution of the stored photograph (``Image.width x Image.height``), one per lesion; ``Annotation.mask_hashes`` maps
the lesion's short name (``MA``, ``HE``, ``EX``, ``SE``) to the PNG's hash.

``partial`` annotations (strokes on the model's prediction), per lesion:

    ====  =========  ======================================================
    0     UNTOUCHED  the clinician said nothing here: ignored in training
    1     ERASED     the clinician erased here: the lesion is absent
    2     PAINTED    the clinician painted here: the lesion is present
    ====  =========  ======================================================

A lesion the clinician did not touch at all is simply left out of ``mask_hashes``. Where a pixel was both painted
and erased, erasing wins (the clinician's last word is usually the eraser; the app should keep only the last action
per pixel and encode that).

``full`` annotations (a complete mask per lesion, usually the prediction with the strokes applied,
:func:`merge_full`): 0 = absent, any value > 0 = present (:func:`encode_full` writes 0/255 so the PNG is viewable).
A lesion left out of a ``full`` annotation's ``mask_hashes`` counts as not annotated, not as empty.
"""

from __future__ import annotations

import numpy as np

UNTOUCHED = 0
ERASED = 1
PAINTED = 2

__all__ = [
    "ERASED",
    "PAINTED",
    "UNTOUCHED",
    "decode_full",
    "decode_partial",
    "encode_full",
    "encode_partial",
    "merge_full",
]


def _binary(mask: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(mask)
    if a.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (H, W) mask, got shape {a.shape}")
    return a > 0


def encode_partial(add: np.ndarray, remove: np.ndarray) -> np.ndarray:
    """One lesion's strokes as the stored partial-mask array (0 untouched, 1 erased, 2 painted; erasing wins).

    Args:
        add: ``(H, W)`` painted pixels (bool or 0/1).
        remove: ``(H, W)`` erased pixels.
    """
    add_b, remove_b = _binary(add, "painted strokes"), _binary(remove, "erased strokes")
    if add_b.shape != remove_b.shape:
        raise ValueError(f"painted strokes {add_b.shape} and erased strokes {remove_b.shape} differ in size")
    out = np.zeros(add_b.shape, np.uint8)
    out[add_b] = PAINTED
    out[remove_b] = ERASED
    return out


def decode_partial(png: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(painted, erased)`` bool masks from a stored partial-mask array.

    Raises:
        ValueError: for an array that is not (H, W) or holds values other than 0, 1, 2.
    """
    a = np.asarray(png)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[..., 0]  # a viewer may have re-saved it as RGB(A): the first channel holds the code
    if a.ndim != 2:
        raise ValueError(f"a partial lesion mask must be (H, W), got shape {a.shape}")
    bad = ~np.isin(a, (UNTOUCHED, ERASED, PAINTED))
    if bad.any():
        values = sorted({int(v) for v in np.unique(a[bad])})[:5]
        raise ValueError(
            f"a partial lesion mask holds 0 (untouched), 1 (erased) or 2 (painted) only, found {values}; "
            "was a full mask stored as partial?"
        )
    return a == PAINTED, a == ERASED


def encode_full(mask: np.ndarray) -> np.ndarray:
    """A complete lesion mask as the stored array: 0 absent, 255 present."""
    return np.where(_binary(mask, "a full lesion mask"), 255, 0).astype(np.uint8)


def decode_full(png: np.ndarray) -> np.ndarray:
    """Bool ``(H, W)`` lesion mask from a stored full-mask array (any value > 0 is present)."""
    a = np.asarray(png)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[..., 0]
    return _binary(a, "a full lesion mask")


def merge_full(pred: np.ndarray, add: np.ndarray, remove: np.ndarray) -> np.ndarray:
    """The corrected complete mask: ``(pred | add) & ~remove`` (bool ``(H, W)``)."""
    pred_b, add_b, remove_b = _binary(pred, "prediction"), _binary(add, "painted"), _binary(remove, "erased")
    if not pred_b.shape == add_b.shape == remove_b.shape:
        raise ValueError(f"prediction {pred_b.shape}, painted {add_b.shape} and erased {remove_b.shape} differ")
    return (pred_b | add_b) & ~remove_b
