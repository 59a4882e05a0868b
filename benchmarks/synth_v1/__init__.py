"""The synthetic fundus generator as it was before its calibration to real photographs (issue 12), frozen.

Kept only so that ``drgnet bench realism`` can measure the old and the new generator in one run and
``drgnet synth --generator v1`` can reproduce old cohorts. It lives outside the ``drgnet`` package on purpose: it
is a near-copy of the current generator, frozen, not code anyone maintains, and it does not ship in the wheel.
``drgnet.data.synthetic`` loads it from this folder by path when ``generator="v1"`` is asked for.
Do not edit: fixes go to the current generator.
Its lesions are 5-6x too contrasted and too few (see ``drgnet synth-stats``).
"""

from __future__ import annotations

import numpy as np

from drgnet.labels import NUM_LESIONS

from .anatomy import Raster, illumination, plan_eye, render_background, render_vessels
from .camera import STYLES, photograph, plan_capture
from .lesions import plan_pathology, render_lesions, render_scars

__all__ = ["STYLES", "render"]


def render(
    grade: int, size: int, style: str, rng_eye, rng_lesions, rng_camera, draw_lesions: bool = True
) -> tuple[np.ndarray, bytes, np.ndarray, np.ndarray, tuple[str, ...], bool]:
    """One photograph of the old generator: image, JPEG bytes, masks, field of view, findings, right eye."""
    cam = STYLES[style]
    eye = plan_eye(rng_eye)
    path = plan_pathology(grade, eye, rng_lesions)
    cap = plan_capture(cam, size, rng_camera)
    raster = Raster(cap.render_size, cap.radius)
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
        light, alphas = light[:, ::-1], alphas[:, :, ::-1]
    image, jpeg, masks, fov = photograph(np.ascontiguousarray(light), np.ascontiguousarray(alphas), cap, cam, size)
    return image, jpeg, masks, fov, path.findings, eye.right
