"""Where the real photographs used for calibration, benchmarks and tests live (never inside the repository).

Two sources, both optional on a user's machine:

- the shared data folder next to the repository (``../shared``, or ``$DRGNET_SHARED_DIR``), which holds four IDRiD
  photographs with lesion masks (``data/idrid-train4``, CC BY 4.0);
- the ``samples/`` folders of two PyPI sdists (retinalysis-inference 0.9.0, retinalysis-fundusprep 1.1.0), unpacked
  by ``scripts/fetch_real_samples.sh`` into ``$DRGNET_SAMPLES_DIR`` (default ``<repo>/data/real-samples``).

Functions return ``None`` (never raise) when a source is absent, so tests and benchmarks can skip with a message.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SDISTS = ("retinalysis_inference-0.9.0", "retinalysis_fundusprep-1.1.0")

# Ground truth we know about the unlabelled sample photographs (file stem -> ICDR grade), from their datasets' own
# descriptions: DRIVE and CHASEDB1 photographs of these ids and HRF "_g" images are healthy eyes, HRF "_dr" shows DR.
HEALTHY_STEMS = ("DRIVE_22", "DRIVE_40", "CHASEDB1_08L", "CHASEDB1_12R", "HRF_04_g")
DR_STEMS = ("HRF_07_dr",)
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


def shared_dir() -> Path | None:
    """The shared data folder (``$DRGNET_SHARED_DIR`` or ``<repo>/../shared``), or None when absent."""
    env = os.environ.get("DRGNET_SHARED_DIR")
    path = Path(env) if env else REPO_ROOT.parent / "shared"
    return path if path.is_dir() else None


def idrid_train4_dir() -> Path | None:
    """The four real IDRiD photographs with lesion masks (IDRiD's own layout), or None when absent."""
    root = shared_dir()
    path = root / "data" / "idrid-train4" if root else None
    return path if path is not None and path.is_dir() else None


def samples_dir() -> Path:
    """Where ``scripts/fetch_real_samples.sh`` unpacks the sdists' samples (may not exist yet)."""
    env = os.environ.get("DRGNET_SAMPLES_DIR")
    return Path(env) if env else REPO_ROOT / "data" / "real-samples"


def sample_photographs() -> dict[str, Path]:
    """Real unlabelled photographs from the sdists' samples, keyed by file stem (first copy found wins).

    Prefers the camera originals (``original/``) over derived versions; returns ``{}`` when nothing was fetched.
    """
    found: dict[str, Path] = {}
    root = samples_dir()
    for sdist in SDISTS:
        base = root / sdist / "samples"
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.suffix.lower() in _IMAGE_SUFFIXES and "original" in path.parts:
                found.setdefault(path.stem, path)
    return found


def skimage_retina() -> Path | None:
    """scikit-image's real fundus photograph ``data/retina.jpg`` when the package ships it locally."""
    try:
        import skimage
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    path = Path(skimage.__file__).parent / "data" / "retina.jpg"
    return path if path.is_file() else None


def photographs() -> list[tuple[str, Path]]:
    """Every real photograph this machine has, as ``(name, path)``: IDRiD (shared folder), the sdists' samples,
    scikit-image's retina. Names say the source, e.g. ``idrid:IDRiD_01``, ``sample:DRIVE_22``, ``skimage:retina``.
    """
    found: list[tuple[str, Path]] = []
    idrid = idrid_train4_dir()
    if idrid is not None:
        found += [(f"idrid:{p.stem}", p) for p in sorted(idrid.rglob("*.jpg"))]
    found += [(f"sample:{stem}", p) for stem, p in sorted(sample_photographs().items())]
    retina = skimage_retina()
    if retina is not None:
        found.append(("skimage:retina", retina))
    return found


# Whose photographs these are, for anything that shows or copies them (the contact sheets of ``drgnet synth-compare``).
_IDRID_CREDIT = (
    "IDRiD (Indian Diabetic Retinopathy Image Dataset), (c) Prasanna Porwal, Samiksha Pachade and Manesh Kokare, "
    "licensed CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/); as redistributed in the DRG-Net authors' "
    'public repository. Porwal et al., "Indian Diabetic Retinopathy Image Dataset (IDRiD): A Database for Diabetic '
    'Retinopathy Screening Research", Data 3(3):25, 2018.'
)
_SAMPLE_CREDIT = (
    "a sample photograph shipped in the samples/ folder of the PyPI sdist {sdist}; {origin}, and stays under its "
    "own terms of use (read them before showing it anywhere public)."
)
_SKIMAGE_CREDIT = (
    "scikit-image's data/retina.jpg: 'Fundus photograph of normal left eye' from Wikimedia Commons (Mikael "
    "Haggstrom, 2014), CC0 1.0 Universal Public Domain Dedication, as scikit-image's data documentation states."
)


def credit(name: str, path: Path) -> str:
    """Where the real photograph ``name`` (as ``photographs()`` names it) comes from and under which licence."""
    source, _, stem = name.partition(":")
    if source == "idrid":
        return _IDRID_CREDIT
    if source == "skimage":
        return _SKIMAGE_CREDIT
    sdist = next((s for s in SDISTS if s in path.parts), "retinalysis-inference or retinalysis-fundusprep")
    datasets = {"DRIVE": "DRIVE", "CHASEDB1": "CHASE_DB1", "HRF": "HRF", "PALM": "PALM"}
    dataset = next((d for prefix, d in datasets.items() if stem.startswith(prefix)), None)
    origin = f"from the public {dataset} research dataset" if dataset else "its origin is not stated by its name"
    return _SAMPLE_CREDIT.format(sdist=sdist, origin=origin)
