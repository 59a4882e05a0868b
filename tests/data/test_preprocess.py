"""Loading, field-of-view detection and preprocessing on the real fundus photograph scikit-image ships."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from drgnet.data.preprocess import (
    MAX_IMAGE_PIXELS,
    FieldOfView,
    NotFundusError,
    crop_to_fov,
    find_fov,
    load_rgb,
    pad_to_square,
    preprocess,
    preprocess_sample,
    to_rgb_uint8,
)
from drgnet.data.sample import Sample


@pytest.fixture(scope="module")
def retina() -> np.ndarray:
    return data.retina()  # 1411 x 1411, FOV circle centred, notch at the top right


@pytest.fixture(scope="module")
def retina_fov(retina: np.ndarray) -> FieldOfView:
    return find_fov(retina, "retina")


# ------------------------------------------------------------------------------------ field of view


def test_retina_fov_is_the_centred_circle(retina: np.ndarray, retina_fov: FieldOfView) -> None:
    fov = retina_fov
    cx, cy = fov.center
    # Measured on the photograph: edges at x = 8 / 1400 and y = 6 / 1401 on the central row / column.
    assert abs(cx - 704) < 3 and abs(cy - 703) < 3
    assert 692 < fov.radius < 701
    assert fov.found and not fov.clipped_top_bottom
    assert fov.mask.shape == retina.shape[:2] and fov.mask.dtype == bool
    assert 0.74 < fov.coverage < 0.79
    x0, y0, x1, y1 = fov.bbox
    assert 3 <= x0 <= 12 and 3 <= y0 <= 12 and 1398 <= x1 <= 1408 and 1398 <= y1 <= 1408


def test_retina_fov_mask_covers_the_retina(retina: np.ndarray, retina_fov: FieldOfView) -> None:
    red = retina[..., 0].astype(int)
    mask = retina_fov.mask
    # Inside: the retina is bright red everywhere (vessels included); outside: dark border, except the
    # camera's notch at the top right that the circle leaves out on purpose.
    assert np.percentile(red[mask], 1) > 60
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    dilated = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert red[eroded].min() > 40
    outside = ~dilated
    outside[100:260, 1100:1260] = False  # the notch
    assert np.percentile(red[outside], 99) < 10


def test_clipped_retina_passes_and_reports_clipping(retina: np.ndarray, retina_fov: FieldOfView) -> None:
    clipped = retina[200:1200]
    fov = find_fov(clipped, "clipped")
    assert fov.clipped_top_bottom
    assert abs(fov.center[0] - retina_fov.center[0]) < 3
    assert abs(fov.center[1] - (retina_fov.center[1] - 200)) < 3
    assert abs(fov.radius - retina_fov.radius) < 4
    assert fov.bbox[1] == 0 and fov.bbox[3] == 1000


def test_camera_mask_cut_inside_the_image_is_a_clip(retina: np.ndarray) -> None:
    masked = retina.copy()
    masked[:250] = 0
    masked[1160:] = 0
    fov = find_fov(masked, "masked")
    assert fov.clipped_top_bottom
    assert 248 <= fov.bbox[1] <= 252 and 1158 <= fov.bbox[3] <= 1162
    assert abs(fov.radius - 697) < 5


@pytest.mark.parametrize("factor", [0.4, 0.15])
def test_dark_retina_passes(retina: np.ndarray, retina_fov: FieldOfView, factor: float) -> None:
    dark = (retina.astype(np.float32) * factor).astype(np.uint8)
    fov = find_fov(dark, "dark")
    assert abs(fov.radius - retina_fov.radius) < 3


def test_vignetted_noisy_jpeg_retina_passes(retina: np.ndarray) -> None:
    h, w = retina.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    falloff = np.clip(1 - 0.7 * (np.hypot(xx - 704, yy - 703) / 700) ** 2, 0, 1)[..., None]
    noisy = retina * falloff * 0.6 + np.random.default_rng(0).normal(0, 3, retina.shape) + 6
    ok, buf = cv2.imencode(".jpg", np.clip(noisy, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 30])
    fov = find_fov(cv2.imdecode(buf, cv2.IMREAD_COLOR), "vignetted")
    assert abs(fov.radius - 697) < 8


def test_greyscale_retina_passes(retina: np.ndarray) -> None:
    grey = to_rgb_uint8(cv2.cvtColor(retina, cv2.COLOR_RGB2GRAY))
    assert abs(find_fov(grey, "grey").radius - 697) < 4


def test_chelsea_is_not_a_fundus() -> None:
    with pytest.raises(NotFundusError, match=r"chelsea\.png: not a fundus photograph"):
        find_fov(data.chelsea(), "chelsea.png")


@pytest.mark.parametrize(
    "name",
    ["astronaut", "coffee", "rocket", "camera", "grey", "black", "noise", "blue_disc"],
)
def test_non_fundus_images_are_rejected(name: str) -> None:
    rng = np.random.default_rng(0)
    disc = np.zeros((300, 300, 3), np.uint8)
    cv2.circle(disc, (150, 150), 130, (40, 90, 200), -1)
    images = {
        "grey": np.full((300, 400, 3), 128, np.uint8),
        "black": np.zeros((300, 400, 3), np.uint8),
        "noise": rng.integers(0, 256, (300, 400, 3), dtype=np.uint8),
        "blue_disc": disc,
    }
    image = images[name] if name in images else to_rgb_uint8(getattr(data, name)())
    with pytest.raises(NotFundusError, match=name):
        find_fov(image, name)
    with pytest.raises(NotFundusError):
        preprocess(image, 64, source=name)


def test_check_fundus_false_uses_the_whole_image() -> None:
    cat = data.chelsea()  # 300 x 451
    fov = find_fov(cat, "cat", check_fundus=False)
    assert not fov.found and fov.mask.all()
    pre = preprocess(cat, 90, source="cat", check_fundus=False)
    assert pre.image.shape == (90, 90, 3)
    # Padded top and bottom: those rows are outside the image, so outside the "field of view".
    assert not pre.fov_mask[0].any() and not pre.fov_mask[-1].any() and pre.fov_mask[45].all()
    assert pre.image[0].max() == 0


def test_check_fundus_false_keeps_a_circle_of_unusual_colour() -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    cv2.circle(image, (100, 100), 90, (30, 160, 60), -1)  # green: a red-free photograph, say
    with pytest.raises(NotFundusError, match="red-dominant"):
        find_fov(image, "red-free.png")
    fov = find_fov(image, "red-free.png", check_fundus=False)
    assert fov.found and abs(fov.radius - 90.5) < 1


def test_small_bright_disc_is_found() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    cv2.circle(image, (150, 100), 60, (180, 90, 50), -1)
    fov = find_fov(image, "disc")
    assert abs(fov.center[0] - 150) < 1 and abs(fov.center[1] - 100) < 1 and abs(fov.radius - 60.5) < 1


def test_find_fov_rejects_wrong_arrays() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        find_fov(np.zeros((50, 50), np.uint8), "flat.png")
    with pytest.raises(ValueError, match="too small"):
        find_fov(np.zeros((5, 50, 3), np.uint8), "thin.png")


# ------------------------------------------------------------------------------------ preprocessing


def test_preprocess_retina(retina: np.ndarray, retina_fov: FieldOfView) -> None:
    pre = preprocess(retina, 128, source="retina")
    assert pre.image.shape == (128, 128, 3) and pre.image.dtype == np.uint8
    assert pre.fov_mask.shape == (128, 128) and pre.fov_mask.dtype == bool
    assert pre.masks is None
    # The FOV circle fills the square up to the margin and sits in its middle.
    assert 0.74 < pre.fov_mask.mean() < 0.78
    ys, xs = np.nonzero(pre.fov_mask)
    assert abs(xs.mean() - 63.5) < 1 and abs(ys.mean() - 63.5) < 1
    # The model-resolution FOV agrees with the full-resolution one.
    assert np.mean(pre.project_mask(retina_fov.mask).astype(bool) == pre.fov_mask) > 0.99
    assert pre.image[pre.fov_mask, 0].mean() > 150 and pre.image[~pre.fov_mask].mean() < 10
    assert pre.original_shape == (1411, 1411)
    assert pre.crop_box == (0, 0, 1411, 1411)
    assert abs(pre.scale * (pre.box[2] - pre.box[0]) - 128) < 1e-9


def test_preprocess_clipped_pads_to_a_centred_square(retina: np.ndarray) -> None:
    pre = preprocess(retina[200:1200], 128, source="clipped")
    assert pre.fov.clipped_top_bottom
    top, bottom, left, right = pre.padding
    assert top > 150 and bottom > 150 and left < 20 and right < 20  # the margin reaches past the sides
    assert pre.image[:5].max() == 0 and pre.image[-5:].max() == 0
    assert not pre.fov_mask[:5].any() and pre.fov_mask[64, 10:118].all()


def test_preprocess_masks_follow_and_keep_microaneurysms(retina: np.ndarray) -> None:
    masks = np.zeros((4, 1411, 1411), np.uint8)
    masks[0, 700:703, 500:503] = 1  # a 3x3 microaneurysm; 128 / 1439 shrinks it to a quarter of a pixel
    masks[1, 300:400, 800:900] = 1
    pre = preprocess(retina, 128, source="retina", masks=masks)
    assert pre.masks is not None and pre.masks.shape == (4, 128, 128) and pre.masks.dtype == np.uint8
    assert set(np.unique(pre.masks)) <= {0, 1}
    assert 1 <= pre.masks[0].sum() <= 2
    ys, xs = np.nonzero(pre.masks[0])
    x, y = pre.to_original_xy(xs.mean(), ys.mean())
    assert abs(x - 501) < 8 and abs(y - 701) < 8
    area = pre.masks[1].sum() / pre.scale**2
    assert abs(area - 100 * 100) < 0.15 * 100 * 100
    assert not pre.masks[2].any() and not pre.masks[3].any()


def test_unproject_recovers_a_painted_square(retina: np.ndarray) -> None:
    size = 512
    masks = np.zeros((1, 1411, 1411), np.uint8)
    masks[0, 400:520, 600:760] = 1
    pre = preprocess(retina, size, source="retina", masks=masks)
    back = pre.unproject_mask(pre.masks[0])
    assert back.shape == (1411, 1411) and back.dtype == np.uint8
    tol = int(np.ceil(1 / pre.scale)) + 1  # one model pixel, in original pixels
    ys, xs = np.nonzero(back)
    assert abs(ys.min() - 400) <= tol and abs(ys.max() - 519) <= tol
    assert abs(xs.min() - 600) <= tol and abs(xs.max() - 759) <= tol

    # A square painted at model resolution lands where to_original_xy says, within a pixel.
    small = np.zeros((size, size), bool)
    small[100:150, 200:260] = True
    full = pre.unproject_mask(small)
    assert full.dtype == bool
    ys, xs = np.nonzero(full)
    x0, y0 = pre.to_original_xy(199.5, 99.5)
    x1, y1 = pre.to_original_xy(259.5, 149.5)
    assert abs(xs.min() - x0) <= 1.5 and abs(xs.max() + 1 - x1) <= 1.5
    assert abs(ys.min() - y0) <= 1.5 and abs(ys.max() + 1 - y1) <= 1.5

    # Probability maps come back interpolated, channel by channel.
    prob = np.zeros((2, size, size), np.float32)
    prob[1, 256, 256] = 1.0
    full = pre.unproject_mask(prob)
    assert full.shape == (2, 1411, 1411) and full.dtype == np.float32
    assert full[0].max() == 0 and 0 < full[1].max() <= 1
    with pytest.raises(ValueError, match="shape"):
        pre.unproject_mask(np.zeros((64, 64)))


def test_unproject_clipped_marks_nothing_outside_the_photograph(retina: np.ndarray) -> None:
    pre = preprocess(retina[200:1200], 256, source="clipped")
    back = pre.unproject_mask(np.ones((256, 256), np.uint8))
    assert back.shape == (1000, 1411)
    assert back[:, 100:1300].all()  # the whole photograph is inside the square box


def test_tiny_and_wide_inputs(retina: np.ndarray) -> None:
    tiny = cv2.resize(retina, (40, 40), interpolation=cv2.INTER_AREA)[5:35]  # 40 x 30, clipped
    pre = preprocess(tiny, 64, source="tiny")
    assert pre.image.shape == (64, 64, 3) and pre.fov.clipped_top_bottom
    assert 0.5 < pre.fov_mask.mean() < 0.8

    wide = np.pad(retina, ((0, 0), (1400, 1400), (0, 0)))  # 3:1
    pre_wide = preprocess(wide, 128, source="wide")
    pre_square = preprocess(retina, 128, source="retina")
    assert abs(pre_wide.fov.center[0] - 1400 - pre_square.fov.center[0]) < 3
    assert np.abs(pre_wide.image.astype(int) - pre_square.image.astype(int)).mean() < 6

    tall = np.pad(retina, ((500, 900), (0, 0), (0, 0)))
    assert preprocess(tall, 32, source="tall").image.shape == (32, 32, 3)


def test_upscaling_a_small_photograph(retina: np.ndarray) -> None:
    small = cv2.resize(retina, (100, 100), interpolation=cv2.INTER_AREA)
    masks = np.zeros((4, 100, 100), np.uint8)
    masks[2, 50:52, 60:62] = 1
    pre = preprocess(small, 256, source="small", masks=masks)
    assert pre.scale > 2 and pre.masks is not None and pre.masks[2].sum() >= 4


def test_crop_and_pad_helpers(retina: np.ndarray, retina_fov: FieldOfView) -> None:
    crop = crop_to_fov(retina, retina_fov, margin=0.0)
    assert crop.shape[0] == crop.shape[1] and abs(crop.shape[0] - 2 * retina_fov.radius) <= 1
    clipped = retina[200:1200]
    crop = crop_to_fov(clipped, find_fov(clipped), margin=0.1)
    assert crop.shape[0] == crop.shape[1] > 1500 and crop[:50].max() == 0
    padded = pad_to_square(np.ones((3, 6, 3), np.uint8), fill=7)
    assert padded.shape == (6, 6, 3)
    assert (padded[0] == 7).all() and (padded[1:4] == 1).all() and (padded[4:] == 7).all()
    with pytest.raises(ValueError, match="field of view"):
        crop_to_fov(retina[:100], retina_fov)


def test_preprocess_rejects_bad_arguments(retina: np.ndarray) -> None:
    with pytest.raises(ValueError, match="size"):
        preprocess(retina, 4)
    with pytest.raises(ValueError, match="masks"):
        preprocess(retina, 64, masks=np.zeros((4, 10, 10), np.uint8))


def test_preprocess_sample(retina: np.ndarray) -> None:
    masks = np.zeros((4, 1411, 1411), np.uint8)
    masks[1, 600:700, 600:700] = 1
    ignore = np.zeros((1411, 1411), bool)
    ignore[1000:1100, 300:400] = True
    sample = Sample(
        image=retina,
        name="retina",
        source="skimage",
        grade=2,
        masks=masks,
        lesion_known=(False, True, False, False),
        ignore=ignore,
        meta={"camera": "unknown"},
    )
    out = preprocess_sample(sample, 96)
    assert out.image.shape == (96, 96, 3) and out.masks is not None and out.masks.shape == (4, 96, 96)
    assert out.grade == 2 and out.lesion_known == sample.lesion_known and out.name == "retina"
    assert out.ignore is not None and out.ignore.shape == (96, 96)
    assert out.ignore[0, 0] and not out.ignore[48, 48]
    assert 0.22 < out.ignore.mean() < 0.28  # outside the FOV plus the ignored patch
    assert out.meta["camera"] == "unknown" and len(out.meta["preprocess"]["box"]) == 4
    assert out.masks[1].sum() > 0

    with pytest.raises(NotFundusError, match="cat"):
        preprocess_sample(Sample(image=data.chelsea(), name="cat", source="t"), 64)


# ------------------------------------------------------------------------------------------ loading


def test_to_rgb_uint8_conversions() -> None:
    grey = np.array([[0, 128], [255, 7]], np.uint8)
    assert to_rgb_uint8(grey).shape == (2, 2, 3) and (to_rgb_uint8(grey)[..., 1] == grey).all()
    u16 = np.array([[0, 65535], [32896, 257]], np.uint16)
    assert to_rgb_uint8(u16)[..., 0].tolist() == [[0, 255], [128, 1]]
    f = np.array([[0.0, 1.0], [0.5, np.nan]], np.float32)
    assert to_rgb_uint8(f)[..., 2].tolist() == [[0, 255], [128, 0]]
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[0, 0, 3] = 255
    rgba[0, 1, 3] = 0
    out = to_rgb_uint8(rgba)
    assert out[0, 0].tolist() == [200, 200, 200] and out[0, 1].tolist() == [0, 0, 0]
    rgb = np.zeros((4, 4, 3), np.uint8)
    assert to_rgb_uint8(rgb) is rgb
    with pytest.raises(ValueError, match="shape"):
        to_rgb_uint8(np.zeros((2, 2, 5), np.uint8))


def test_load_greyscale_rgba_palette_cmyk(tmp_path: Path) -> None:
    grey = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (5, 1))
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    out = load_rgb(tmp_path / "grey.png")
    assert out.shape == (5, 25, 3) and (out[..., 0] == grey).all() and (out[..., 2] == grey).all()

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque, bottom transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = load_rgb(tmp_path / "rgba.png")
    assert out.shape == (4, 4, 3) and (out[:2, :, 0] == 200).all() and (out[2:] == 0).all()

    pal = Image.fromarray(np.full((6, 6, 3), (180, 60, 30), np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE)
    pal.save(tmp_path / "pal.png")
    assert load_rgb(tmp_path / "pal.png")[0, 0].tolist() == [180, 60, 30]

    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    out = load_rgb(tmp_path / "cmyk.jpg")
    assert out.shape == (8, 8, 3) and out[4, 4, 0] > 200 and out[4, 4, 1] < 60


def test_load_16bit(tmp_path: Path) -> None:
    grey16 = np.array([[0, 65535, 32896, 1000]], np.uint16)
    Image.fromarray(grey16).save(tmp_path / "grey16_pillow.png")  # Pillow mode I;16
    cv2.imwrite(str(tmp_path / "grey16_cv2.png"), grey16)
    for name in ("grey16_pillow.png", "grey16_cv2.png"):
        out = load_rgb(tmp_path / name)
        assert out.shape == (1, 4, 3) and out[0, :, 1].tolist() == [0, 255, 128, 4], name

    rgb16 = np.zeros((2, 3, 3), np.uint16)
    rgb16[0, 0] = (65535, 0, 0)  # pure red, written as BGR for OpenCV below
    rgb16[0, 1] = (0, 32896, 0)
    rgb16[1, 2] = (0, 0, 65535 // 4)
    cv2.imwrite(str(tmp_path / "rgb16.png"), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "rgb16.tif"), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    for name in ("rgb16.png", "rgb16.tif"):
        out = load_rgb(tmp_path / name)
        assert out.dtype == np.uint8 and out.shape == (2, 3, 3), name
        assert out[0, 0].tolist() == [255, 0, 0] and out[0, 1].tolist() == [0, 128, 0], name
        assert out[1, 2].tolist() == [0, 0, 64], name


def test_load_applies_exif_orientation(tmp_path: Path) -> None:
    image = np.zeros((20, 40, 3), np.uint8)  # landscape, red block at the top left
    image[:10, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(image).save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    out = load_rgb(tmp_path / "rotated.jpg")
    assert out.shape == (40, 20, 3)  # portrait once oriented
    # Clockwise rotation brings the top-left corner to the top right.
    assert out[2:8, 12:18, 0].min() > 200 and out[2:8, 2:8, 0].max() < 50

    # The same through the OpenCV path for 16-bit colour: a 16-bit PNG with an eXIf chunk added by hand.
    rgb16 = np.zeros((20, 40, 3), np.uint16)
    rgb16[:10, :10] = (65535, 0, 0)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    png = buf.tobytes()
    payload = exif.tobytes()[6:]  # without the "Exif\0\0" prefix JPEG uses
    crc = zlib.crc32(b"eXIf" + payload) & 0xFFFFFFFF
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload + struct.pack(">I", crc)
    at = png.index(b"IDAT") - 4
    (tmp_path / "rotated16.png").write_bytes(png[:at] + chunk + png[at:])
    out = load_rgb(tmp_path / "rotated16.png")
    assert out.shape == (40, 20, 3)
    assert (out[:10, 10:, 0] == 255).all() and out[:, :10].max() == 0 and out[10:].max() == 0


def test_load_file_object(tmp_path: Path, retina: np.ndarray) -> None:
    cv2.imwrite(str(tmp_path / "r.png"), cv2.cvtColor(retina[:50, :60], cv2.COLOR_RGB2BGR))
    with open(tmp_path / "r.png", "rb") as f:
        assert (load_rgb(f) == retina[:50, :60]).all()


def test_load_errors_name_the_file(tmp_path: Path, retina: np.ndarray) -> None:
    notes = tmp_path / "notes.png"
    notes.write_text("this is not an image\n")
    with pytest.raises(ValueError, match=r"notes\.png: not an image Pillow can read"):
        load_rgb(notes)

    ok, buf = cv2.imencode(".jpg", retina)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buf.tobytes()[: len(buf) // 2])
    with pytest.raises(ValueError, match=r"truncated\.jpg: not an image Pillow can read"):
        load_rgb(truncated)

    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_rgb(tmp_path / "missing.png")


def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG that declares a huge size but holds almost no data: a decompression bomb's shape."""

    def chunk(tag: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


@pytest.mark.parametrize("side", [10_000, 30_000])  # above our limit; above twice Pillow's
def test_decompression_bomb_is_refused(tmp_path: Path, side: int) -> None:
    assert side * side > MAX_IMAGE_PIXELS
    bomb = tmp_path / "bomb.png"
    _png_header(bomb, side, side)
    with pytest.raises(ValueError, match=rf"bomb\.png: image too large .*{side * side:,} pixels"):
        load_rgb(bomb)
