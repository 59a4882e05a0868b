"""ICDR grades and lesion classes: the single source of truth for names, channel order, the referral threshold,
the clinical summaries of a grade distribution (referable probability, uncertainty) and the lesion colours.

Pure Python on purpose: the web app, the review-queue strategies and the screening workers all import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: International Clinical Diabetic Retinopathy (ICDR) severity scale.
GRADES: tuple[int, ...] = (0, 1, 2, 3, 4)
GRADE_NAMES: dict[int, str] = {
    0: "No DR",
    1: "Mild NPDR",
    2: "Moderate NPDR",
    3: "Severe NPDR",
    4: "Proliferative DR",
}
NUM_GRADES = len(GRADES)

#: Grade at and above which a patient is referred to an ophthalmologist.
REFERABLE_MIN_GRADE = 2

#: Lesion channels, in the order every mask tensor and model output uses.
LESIONS: tuple[str, ...] = ("MA", "HE", "EX", "SE")
LESION_NAMES: dict[str, str] = {
    "MA": "Microaneurysms",
    "HE": "Haemorrhages",
    "EX": "Hard exudates",
    "SE": "Soft exudates (cotton-wool spots)",
}
NUM_LESIONS = len(LESIONS)

# One palette: the word a legend prints (a colour Streamlit's coloured text knows) and the RGB every overlay
# draws, side by side so they cannot drift apart.
_LESION_PALETTE: dict[str, tuple[str, tuple[int, int, int]]] = {
    "MA": ("red", (255, 40, 40)),
    "HE": ("violet", (160, 0, 220)),
    "EX": ("yellow", (255, 230, 0)),
    "SE": ("blue", (0, 200, 255)),
}
#: Overlay colours (RGB) used wherever lesions are drawn for a person to see.
LESION_COLOURS: dict[str, tuple[int, int, int]] = {k: rgb for k, (_, rgb) in _LESION_PALETTE.items()}
#: The same colours by name, for legends that take named colours (Streamlit's ``:yellow[...]`` markdown).
LESION_COLOUR_NAMES: dict[str, str] = {k: name for k, (name, _) in _LESION_PALETTE.items()}


def lesion_index(name: str) -> int:
    """Channel index of a lesion given its short name (case-insensitive)."""
    key = name.strip().upper()
    if key not in LESIONS:
        raise ValueError(f"unknown lesion {name!r}; expected one of {', '.join(LESIONS)}")
    return LESIONS.index(key)


def check_grade(grade: int) -> int:
    """Return ``grade`` as int if it is a valid ICDR grade, else raise ValueError."""
    g = int(grade)
    if g not in GRADES:
        raise ValueError(f"grade {grade!r} is not an ICDR grade (0-4)")
    return g


def is_referable(grade: int) -> bool:
    """True for moderate NPDR or worse (the usual referral threshold)."""
    return check_grade(grade) >= REFERABLE_MIN_GRADE


def referable_probability(probabilities: Sequence[float] | None) -> float:
    """P(grade >= ``REFERABLE_MIN_GRADE``): the probability mass of the referable grades.

    Args:
        probabilities: One probability per ICDR grade (a list, tuple or 1-D array), or None.

    Returns:
        The referable mass; 0.0 when there is no prediction (None or empty).
    """
    if probabilities is None or len(probabilities) == 0:
        return 0.0
    return float(sum(float(p) for p in probabilities[REFERABLE_MIN_GRADE:NUM_GRADES]))


def normalised_entropy(probabilities: Sequence[float] | None) -> float:
    """Entropy of a grade distribution divided by its maximum: 0 = certain, 1 = uniform (cannot tell grades apart).

    Args:
        probabilities: One probability per grade (a list, tuple or 1-D array), or None.

    Returns:
        The normalised entropy in [0, 1]; 0.0 when there is no prediction or a single class.
    """
    if probabilities is None or len(probabilities) < 2:
        return 0.0
    p = [min(max(float(x), 1e-12), 1.0) for x in probabilities]
    return -sum(x * math.log(x) for x in p) / math.log(len(p))
