"""Camera styles: how one retina looks through different fundus cameras.

A style changes only what a camera changes — field size and clipping, resolution, optics, illumination,
colour processing, sensor noise and JPEG — never the eye, so a domain-shift benchmark can compare the same
eyes across "clinics".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CameraStyle:
    """The look of one fundus camera and its image pipeline."""

    name: str
    description: str
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)  # gain per R, G, B channel: the colour cast
    gamma: float = 1.0  # output = input ** gamma; below 1 lifts the mid-tones
    brightness: float = 1.0  # exposure
    contrast: float = 1.0  # about the mean inside the field of view
    saturation: float = 1.0  # 0 grey, 1 unchanged
    illumination_unevenness: float = 0.0  # one side of the field darker than the other, 0-1
    rim_haze: float = 0.0  # whitish-blue haze towards the rim from corneal / lens reflections, 0-1
    blur_sigma: float = 0.0  # optical blur, pixels at 512 px (scaled with the image size)
    noise_sigma: float = 0.0  # sensor noise, 8-bit levels
    jpeg_quality: int = 95  # 1-100
    fov_fraction: float = 0.92  # field-of-view diameter / image side
    clip_probability: float = 0.0  # chance the field is cut flat at top and bottom
    resolution_scale: float = 1.0  # captured at this fraction of the output size and upscaled (softer)
    dust: float = 0.0  # mean number of out-of-focus dust specks on the optics per photograph
    eyelash_probability: float = 0.0  # chance of a soft eyelash / eyelid shadow over one edge of the field
    flash_reflex_probability: float = 0.0  # chance of a hazy whitish reflex of the flash off cornea or lens
    edge_glare_probability: float = 0.0  # chance of a bright arc of glare along part of the rim

    def __post_init__(self) -> None:
        checks = {
            "gamma": 0.2 <= self.gamma <= 5.0,
            "brightness": 0.1 <= self.brightness <= 5.0,
            "contrast": 0.1 <= self.contrast <= 3.0,
            "saturation": 0.0 <= self.saturation <= 3.0,
            "illumination_unevenness": 0.0 <= self.illumination_unevenness <= 1.0,
            "rim_haze": 0.0 <= self.rim_haze <= 1.0,
            "blur_sigma": 0.0 <= self.blur_sigma <= 20.0,
            "noise_sigma": 0.0 <= self.noise_sigma <= 64.0,
            "jpeg_quality": 1 <= self.jpeg_quality <= 100,
            "fov_fraction": 0.3 <= self.fov_fraction <= 1.0,
            "clip_probability": 0.0 <= self.clip_probability <= 1.0,
            "resolution_scale": 0.1 <= self.resolution_scale <= 1.0,
            "dust": 0.0 <= self.dust <= 50.0,
            "eyelash_probability": 0.0 <= self.eyelash_probability <= 1.0,
            "flash_reflex_probability": 0.0 <= self.flash_reflex_probability <= 1.0,
            "edge_glare_probability": 0.0 <= self.edge_glare_probability <= 1.0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"camera style {self.name!r}: out-of-range {', '.join(bad)}")
        if len(self.white_balance) != 3 or min(self.white_balance) <= 0:
            raise ValueError(f"camera style {self.name!r}: white_balance needs three positive gains")


# One line per concern: colour, light and optics, sensor and file, field of view, dust and reflexes.
# fmt: off
STYLES: dict[str, CameraStyle] = {
    s.name: s
    for s in (
        CameraStyle(
            name="default", description="Desktop 45-degree fundus camera, well exposed, fine JPEG.",
            illumination_unevenness=0.25, blur_sigma=0.7,
            noise_sigma=5.0, jpeg_quality=94,
            fov_fraction=0.92, clip_probability=0.25,
            dust=1.0, eyelash_probability=0.1, flash_reflex_probability=0.25, edge_glare_probability=0.35,
        ),
        CameraStyle(
            name="clinic_a", description="Another desktop camera: slightly warmer and brighter, a little softer.",
            white_balance=(1.04, 0.97, 0.90), gamma=0.92, brightness=1.05, contrast=1.05,
            illumination_unevenness=0.3, blur_sigma=0.7, noise_sigma=5.5, jpeg_quality=88,
            fov_fraction=0.9, clip_probability=0.5,
            dust=2.0, eyelash_probability=0.15, flash_reflex_probability=0.3, edge_glare_probability=0.4,
        ),
        CameraStyle(
            name="clinic_b",
            description="Different camera make: cooler cast, flatter contrast, smaller field, softer.",
            white_balance=(0.88, 1.02, 1.3), gamma=1.12, brightness=1.05, contrast=0.8, saturation=0.85,
            illumination_unevenness=0.25, rim_haze=0.15, blur_sigma=0.9,
            noise_sigma=5.5, jpeg_quality=82, resolution_scale=0.8,
            fov_fraction=0.8, clip_probability=0.0,
            dust=1.5, eyelash_probability=0.15, flash_reflex_probability=0.3, edge_glare_probability=0.3,
        ),
        CameraStyle(
            name="smartphone",
            description="Phone with a fundus adapter: strong yellow cast, uneven light, noisy, blurred, low "
            "resolution, heavy JPEG, small field.",
            white_balance=(1.12, 0.95, 0.55), gamma=0.85, brightness=1.1, contrast=1.2, saturation=1.25,
            illumination_unevenness=0.55, rim_haze=0.45, blur_sigma=1.4,
            noise_sigma=7.0, jpeg_quality=55, resolution_scale=0.45,
            fov_fraction=0.72, clip_probability=0.2,
            dust=3.0, eyelash_probability=0.3, flash_reflex_probability=0.5, edge_glare_probability=0.6,
        ),
    )
}
# fmt: on


def resolve_style(style: str | CameraStyle) -> CameraStyle:
    """A style by name, or the style itself."""
    if isinstance(style, CameraStyle):
        return style
    if style not in STYLES:
        raise ValueError(f"unknown camera style {style!r}; choose one of {', '.join(STYLES)}")
    return STYLES[style]


@dataclass(frozen=True)
class Capture:
    """One shot's random camera state, drawn before the retina is rendered (it sets the pixel scale)."""

    render_size: int  # side of the canvas the retina is rasterised on
    radius: float  # field-of-view radius on that canvas, pixels
    clip: float | None  # half-height of the kept band, field radii; None when not clipped
    light_angle: float  # direction of the illumination fall-off
    light_amount: float
    noise_seed: int
    artefacts: tuple[tuple, ...] = ()  # (kind, parameters...) in field-radius units, see _artefacts
    exposure: float = 1.0  # this shot's exposure relative to the style's (pupil size, flash, operator)
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)  # this shot's colour balance relative to the style's
    vignetting: float = 0.0  # extra darkening towards the rim, at the rim (small pupils darken the periphery)


def plan_capture(style: CameraStyle, size: int, rng: np.random.Generator) -> Capture:
    clipped = rng.random() < style.clip_probability
    clip_h = rng.uniform(0.8, 0.92)
    light_angle = rng.uniform(0.0, 2.0 * math.pi)
    light_amount = style.illumination_unevenness * rng.uniform(0.6, 1.0)
    noise_seed = int(rng.integers(1 << 31))
    artefacts = _plan_artefacts(style, rng)
    # Real photographs of one camera still vary shot to shot in exposure, colour and fall-off (green means of
    # 42-118 and rim / centre ratios of 0.4-1.0 among the real photographs of drgnet bench realism).
    exposure = float(np.exp(rng.normal(0.0, 0.3)))
    gains = tuple(float(g) for g in np.exp(rng.normal(0.0, [0.08, 0.14, 0.3])))
    vignetting = float(rng.uniform(0.0, 0.7) ** 1.5)
    render = max(32, int(round(size * style.resolution_scale)))
    frac = style.fov_fraction
    if clipped:
        # Cameras that clip the field show a larger circle cut by the sensor's top and bottom edges.
        frac = min(0.99, frac * 1.08)
    return Capture(
        render,
        0.5 * render * frac,
        clip_h if clipped else None,
        light_angle,
        light_amount,
        noise_seed,
        artefacts,
        exposure,
        gains,
        vignetting,
    )


def _plan_artefacts(style: CameraStyle, rng: np.random.Generator) -> tuple[tuple, ...]:
    """What the optics and the patient add to this shot, in field radii (so any resolution shows the same)."""
    out: list[tuple] = []
    for _ in range(int(rng.poisson(style.dust))):
        # Dust on the optics is out of focus: a soft, faint, slightly darker-rimmed disc.
        x, y = rng.uniform(-0.75, 0.75, 2)
        out.append(("dust", float(x), float(y), rng.uniform(0.01, 0.04), rng.uniform(0.03, 0.1)))
    if rng.random() < style.eyelash_probability:
        out.append(("eyelash", rng.uniform(0, 2 * math.pi), rng.uniform(0.55, 0.85), rng.uniform(0.25, 0.6)))
    if rng.random() < style.flash_reflex_probability:
        x, y = rng.normal(0.0, 0.25, 2)
        out.append(("flash", float(x), float(y), rng.uniform(0.12, 0.35), rng.uniform(0.02, 0.07)))
    if rng.random() < style.edge_glare_probability:
        out.append(("glare", rng.uniform(0, 2 * math.pi), rng.uniform(0.5, 1.4), rng.uniform(0.08, 0.25)))
    return tuple(out)


def _artefacts(img: np.ndarray, X: np.ndarray, Y: np.ndarray, artefacts: tuple[tuple, ...]) -> np.ndarray:
    """Apply dust, eyelash shadow, flash reflex and edge glare to the light reaching the sensor."""
    for kind, *p in artefacts:
        if kind == "dust":
            x, y, r, depth = p
            d = np.sqrt((X - x) ** 2 + (Y - y) ** 2) / r
            shade = depth * (np.exp(-(d**4)) + 0.4 * np.exp(-((d - 1.0) ** 2) / 0.05))
            img = img * (1.0 - np.clip(shade, 0.0, 0.5))[..., None]
        elif kind == "eyelash":
            angle, start, depth = p
            g = X * math.cos(angle) + Y * math.sin(angle)
            across = -X * math.sin(angle) + Y * math.cos(angle)
            # A lid or lashes shade one side with a soft, slightly wavy edge.
            edge = start + 0.04 * np.sin(across * 9.0 + angle * 5.0)
            t = np.clip((g - edge) / 0.3, 0.0, 1.0)
            img = img * (1.0 - depth * t * t * (3.0 - 2.0 * t))[..., None]
        elif kind == "flash":
            x, y, r, amount = p
            haze = amount * np.exp(-((X - x) ** 2 + (Y - y) ** 2) / (2.0 * r * r))
            img = img + haze[..., None] * np.array([0.85, 0.9, 1.0], np.float32)
        elif kind == "glare":
            angle, width, amount = p
            rad = np.sqrt(X * X + Y * Y)
            ang = np.cos(np.arctan2(Y, X) - angle)
            arc = np.clip((ang - math.cos(width / 2.0)) / (1.0 - math.cos(width / 2.0)), 0.0, 1.0)
            ring = np.clip((rad - 0.8) / 0.2, 0.0, 1.0) ** 2
            img = img + (amount * arc * ring)[..., None] * np.array([0.95, 0.85, 0.6], np.float32)
    return img.astype(np.float32)


def field_of_view(size: int, radius: float, clip: float | None) -> np.ndarray:
    """Anti-aliased field-of-view alpha, (size, size) float32."""
    a = (np.arange(size, dtype=np.float32) + 0.5) - size / 2.0
    d = np.sqrt(a[None, :] ** 2 + a[:, None] ** 2)
    alpha = np.clip(radius - d + 0.5, 0.0, 1.0)
    if clip is not None:
        alpha[np.abs(a) > clip * radius, :] = 0.0
    return alpha


def photograph(
    retina: np.ndarray, alphas: np.ndarray, cap: Capture, style: CameraStyle, size: int
) -> tuple[np.ndarray, bytes, np.ndarray, np.ndarray]:
    """Take the picture of a rendered retina.

    Args:
        retina: Light leaving the retina, ``(S, S, 3)`` float32 on the capture canvas.
        alphas: Lesion alphas on the same canvas, ``(4, S, S)``.
        cap: The shot's camera state.
        style: The camera.
        size: Output side length.

    Returns:
        The decoded JPEG image (H, W, 3) uint8 RGB, the JPEG bytes, the lesion masks (4, H, W) uint8 in {0, 1}
        and the field of view (H, W) bool.
    """
    s = cap.render_size
    img = retina
    a = ((np.arange(s, dtype=np.float32) + 0.5) - s / 2.0) / cap.radius
    X, Y = a[None, :], a[:, None]
    if cap.light_amount > 0:
        g = X * math.cos(cap.light_angle) + Y * math.sin(cap.light_angle)
        img = img * (1.0 - cap.light_amount * np.clip(0.5 * (g + 1.0), 0.0, 1.2) ** 2)[..., None]
    if cap.vignetting > 0:
        img = img * (1.0 - cap.vignetting * np.clip(X * X + Y * Y, 0.0, 1.0))[..., None]
    if cap.artefacts:
        img = _artefacts(img, X, Y, cap.artefacts)
    if style.rim_haze > 0:
        r = np.sqrt(X * X + Y * Y)
        t = np.clip((r - 0.55) / 0.45, 0.0, 1.0) ** 2
        img = img + (style.rim_haze * 0.35 * t)[..., None] * np.array([0.55, 0.62, 0.75], np.float32)

    masks_small = alphas >= 0.5
    if s != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)
        masks = np.stack(
            [cv2.resize(m.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) for m in masks_small]
        )
    else:
        masks = masks_small.astype(np.uint8)
    scale = size / s
    fov_a = field_of_view(size, cap.radius * scale, cap.clip)
    fov = fov_a >= 0.5
    if style.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), style.blur_sigma * size / 512.0)

    gain = style.brightness * cap.exposure * np.asarray(style.white_balance, np.float32) * np.asarray(cap.gains)
    img = img * gain.astype(np.float32)
    if style.contrast != 1.0:
        mean = img[fov].mean(axis=0) if fov.any() else np.zeros(3, np.float32)
        img = mean + (img - mean) * style.contrast
    if style.saturation != 1.0:
        grey = img @ np.array([0.299, 0.587, 0.114], np.float32)
        img = grey[..., None] + (img - grey[..., None]) * style.saturation
    img = np.clip(img, 0.0, 1.0)
    if style.gamma != 1.0:
        img = img**style.gamma
    img = img * 255.0
    if style.noise_sigma > 0:
        nrng = np.random.default_rng(cap.noise_seed)
        shared = nrng.standard_normal((size, size, 1), dtype=np.float32)
        chroma = nrng.standard_normal((size, size, 3), dtype=np.float32)
        img = img + style.noise_sigma * (0.7 * shared + 0.5 * chroma)
    img = img * fov_a[..., None]
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(style.jpeg_quality)])
    if not ok:  # pragma: no cover - OpenCV only fails here on a broken build
        raise RuntimeError("OpenCV could not encode a JPEG")
    decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1].copy()
    masks &= fov[None].astype(np.uint8)
    return decoded, jpeg.tobytes(), masks, fov
