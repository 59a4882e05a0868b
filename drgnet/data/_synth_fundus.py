"""One synthetic fundus photograph: plan the eye and its findings, render the retina, take the picture.

The public entry points are re-exported by ``drgnet.data.synthetic`` (see its docstring).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drgnet.data._synth_anatomy import Eye, Raster, illumination, plan_eye, render_background
from drgnet.data._synth_camera import CameraStyle, photograph, plan_capture, resolve_style
from drgnet.data._synth_lesions import render_lesions, render_scars
from drgnet.data._synth_pathology import Pathology, plan_pathology
from drgnet.data._synth_vessels import grow_tree, render_vessels
from drgnet.data.sample import Sample
from drgnet.labels import NUM_LESIONS, check_grade

#: Generator versions: v2 is calibrated lesion by lesion to real photographs, v1 is the frozen original.
GENERATORS = ("v2", "v1")
#: Revision of the default generator's photographs: bump it whenever the same (seed, index, style) paints a different
#: picture, so caches keyed on it (the demo model) notice. v2.1: optic disc and vessels calibrated to real photographs
#: (``anatomy_stats``): a smaller disc with a sharper rim and less glow. v2.2: haemorrhages drawn as overlapping ovals
#: along a short random walk (elongated and lobed, as real ones; ``lesion_stats`` solidity and elongation).
GENERATOR_REVISION = "v2.2"


def revision_of(generator: str) -> str:
    """The revision a cohort made by ``generator`` ("v1" or "v2") records: today's for "v2", the name for "v1"."""
    return GENERATOR_REVISION if generator == "v2" else generator


IMAGE_PREFIX = "SYN_"
_MIN_SIZE = 32

# Independent random streams per image, so that e.g. a different camera cannot move a lesion.
_STREAM_EYE, _STREAM_LESIONS, _STREAM_CAMERA, _STREAM_COHORT = 1, 2, 3, 4


def image_name(index: int) -> str:
    """File stem of the ``index``-th synthetic photograph, e.g. ``SYN_00042``."""
    return f"{IMAGE_PREFIX}{index:05d}"


@dataclass
class SyntheticFundus:
    """One synthetic photograph and everything known about it.

    Attributes:
        image: RGB photograph after the camera style, JPEG round trip included, ``(H, W, 3)`` uint8.
        masks: Lesion masks in ``LESIONS`` order, ``(4, H, W)`` uint8 in {0, 1}.
        fov: Field of view, ``(H, W)`` bool.
        grade: ICDR grade 0-4.
        findings: What was drawn, e.g. ``("microaneurysms", "venous_beading", "nvd")``.
        style: Camera style name.
        seed: Cohort seed.
        index: Image number within the cohort.
        eye: ``"right"`` or ``"left"`` (the disc is on the image's right for a right eye).
        jpeg: The encoded photograph, exactly the bytes a cohort writes.
    """

    image: np.ndarray
    masks: np.ndarray
    fov: np.ndarray
    grade: int
    findings: tuple[str, ...]
    style: str
    seed: int
    index: int
    eye: str
    jpeg: bytes

    @property
    def name(self) -> str:
        return image_name(self.index)

    def to_sample(self) -> Sample:
        """The photograph as the record every dataset reader yields."""
        return Sample(
            image=self.image,
            name=self.name,
            source=f"synthetic:{self.style}",
            grade=self.grade,
            masks=self.masks,
            lesion_known=(True,) * NUM_LESIONS,
            ignore=~self.fov,
            meta={"findings": ";".join(self.findings), "seed": self.seed, "eye": self.eye},
        )


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) % (1 << 64), int(index), stream]))


def _check_size(size: int) -> int:
    s = int(size)
    if s < _MIN_SIZE:
        raise ValueError(f"size {size!r} is too small for a fundus photograph (at least {_MIN_SIZE} px)")
    return s


def _plan(grade: int, seed: int, index: int) -> tuple[Eye, Pathology]:
    rng_eye = _rng(seed, index, _STREAM_EYE)
    eye = plan_eye(rng_eye)
    eye.vessels = grow_tree(rng_eye, eye)
    return eye, plan_pathology(grade, eye, _rng(seed, index, _STREAM_LESIONS))


def _render_retina(
    eye: Eye, path: Pathology, raster: Raster, draw_lesions: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Light leaving the retina, ``(S, S, 3)`` float32, and the lesion alphas ``(4, S, S)``, on one canvas."""
    background = render_background(eye, raster)
    alb = background.copy()
    render_scars(alb, path.scars, raster)
    render_vessels(alb, background, eye, raster, path.vessels, path.new_vessels)
    if draw_lesions:
        alphas = render_lesions(alb, background, path.lesions, raster)
    else:
        alphas = np.zeros((NUM_LESIONS, raster.size, raster.size), np.float32)
    light = alb * illumination(raster)[..., None]
    if eye.right:
        # Everything was drawn as a left eye (disc on the left); a right eye is its mirror image.
        light = light[:, ::-1]
        alphas = alphas[:, :, ::-1]
    return np.ascontiguousarray(light), np.ascontiguousarray(alphas)


def generate_fundus(
    grade: int,
    size: int = 512,
    seed: int = 0,
    style: str | CameraStyle = "default",
    index: int = 0,
    *,
    draw_lesions: bool = True,
    generator: str = "v2",
) -> SyntheticFundus:
    """Paint one fundus photograph of ICDR ``grade``.

    Args:
        grade: ICDR grade 0-4; it decides which lesions are drawn and how many.
        size: Side length of the square photograph in pixels.
        seed: Cohort seed. With ``index`` it fixes the eye, its lesions and the camera's random state.
        style: Camera style name (see ``STYLES``) or a ``CameraStyle``.
        index: Image number within the cohort.
        draw_lesions: False paints the same eye through the same camera without the four masked lesion
            types (new vessels, IRMA, beading and laser scars stay); its masks are empty. Useful to see
            exactly what the lesions changed.
        generator: ``"v2"`` (calibrated to real photographs) or ``"v1"`` (the frozen generator from before the
            calibration, for comparisons such as ``drgnet bench realism``).

    Returns:
        The photograph, its masks, field of view and what was drawn.

    Raises:
        ValueError: On a grade outside 0-4, an unknown style or generator, or a size below 32 px.
    """
    grade = check_grade(grade)
    size = _check_size(size)
    cam = resolve_style(style)
    if int(index) < 0:
        raise ValueError(f"index {index!r} must be >= 0")
    if generator not in GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; choose one of {', '.join(GENERATORS)}")
    if generator == "v1":
        return _generate_v1(grade, size, seed, cam, int(index), draw_lesions)
    eye, path = _plan(grade, seed, index)
    cap = plan_capture(cam, size, _rng(seed, index, _STREAM_CAMERA))
    retina, alphas = _render_retina(eye, path, Raster(cap.render_size, cap.radius), draw_lesions)
    image, jpeg, masks, fov = photograph(retina, alphas, cap, cam, size)
    return SyntheticFundus(
        image=image,
        masks=masks,
        fov=fov,
        grade=grade,
        findings=path.findings,
        style=cam.name,
        seed=int(seed),
        index=int(index),
        eye="right" if eye.right else "left",
        jpeg=jpeg,
    )


#: Where the frozen v1 generator lives: outside the package (a near-copy of this one, not shipped in the wheel).
V1_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "synth_v1"
_V1_MODULE = "drgnet_benchmarks_synth_v1"


def _load_v1():
    """Import the frozen v1 generator from ``benchmarks/synth_v1`` of the source checkout (once per process)."""
    if _V1_MODULE in sys.modules:
        return sys.modules[_V1_MODULE]
    init = V1_DIR / "__init__.py"
    if not init.is_file():
        raise ValueError(
            f"generator v1 is not available: {init} is missing (it ships only with a source checkout, "
            "in benchmarks/synth_v1); use generator v2"
        )
    spec = importlib.util.spec_from_file_location(_V1_MODULE, init, submodule_search_locations=[str(V1_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[_V1_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_V1_MODULE]
        raise
    return module


def _generate_v1(grade: int, size: int, seed: int, cam: CameraStyle, index: int, draw: bool) -> SyntheticFundus:
    _synth_v1 = _load_v1()
    if cam.name not in _synth_v1.STYLES:
        raise ValueError(f"generator v1 knows only the styles {', '.join(_synth_v1.STYLES)}, not {cam.name!r}")
    image, jpeg, masks, fov, findings, right = _synth_v1.render(
        grade,
        size,
        cam.name,
        _rng(seed, index, _STREAM_EYE),
        _rng(seed, index, _STREAM_LESIONS),
        _rng(seed, index, _STREAM_CAMERA),
        draw,
    )
    return SyntheticFundus(
        image=image,
        masks=masks,
        fov=fov,
        grade=grade,
        findings=findings,
        style=cam.name,
        seed=int(seed),
        index=index,
        eye="right" if right else "left",
        jpeg=jpeg,
    )
