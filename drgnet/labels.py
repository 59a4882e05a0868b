"""ICDR grades and lesion classes: the single source of truth for names and channel order."""

from __future__ import annotations

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

#: Overlay colours (RGB) used wherever lesions are drawn for a person to see.
LESION_COLOURS: dict[str, tuple[int, int, int]] = {
    "MA": (255, 40, 40),
    "HE": (160, 0, 220),
    "EX": (255, 230, 0),
    "SE": (0, 200, 255),
}


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
