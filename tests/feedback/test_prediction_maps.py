"""Stored prediction maps: PNGs in uint8 steps of 1/255, older float .npz maps still readable, sizes checked."""

from __future__ import annotations

import numpy as np
import pytest

from db.artifacts import artifact_store
from drgnet.labels import LESIONS
from feedback.predictions import decode_map, encode_map, load_maps


def test_maps_round_trip_within_half_a_step_and_zero_stays_zero():
    rng = np.random.default_rng(0)
    probs = rng.random((64, 48)).astype(np.float32)
    probs[:10] = 0.0
    probs[10, :5] = [1.0, 0.5, 1.2, -0.1, 0.999]
    back = decode_map(encode_map(probs))
    assert back.dtype == np.float32 and back.shape == probs.shape
    assert np.abs(back - np.clip(probs, 0, 1)).max() <= 0.5 / 255 + 1e-7
    assert (back[:10] == 0).all() and back[10, 0] == 1.0 and back[10, 2] == 1.0 and back[10, 3] == 0.0
    # Thresholding at 0.5 agrees away from the boundary step.
    far = np.abs(probs - 0.5) > 1 / 255
    assert ((back >= 0.5) == (probs >= 0.5))[far].all()


def test_float_maps_stored_before_are_read_unchanged(tmp_path):
    store = artifact_store(tmp_path)
    old = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32).astype(np.float16)
    new = encode_map(old.astype(np.float32))

    class Row:
        lesion_map_hashes = {n: store.put_npz(old) if n in ("MA", "EX") else store.put_png(new) for n in LESIONS}
        attention_map_hash = store.put_npz(old)

    lesion, attention = load_maps(Row(), tmp_path)
    assert lesion.shape == (4, 32, 32) and lesion.dtype == np.float32
    np.testing.assert_array_equal(lesion[0], old.astype(np.float32))
    assert np.abs(lesion[1] - old.astype(np.float32)).max() <= 0.5 / 255 + 1e-3  # float16 + one half step
    np.testing.assert_array_equal(attention, old.astype(np.float32))
    assert store.get_png(Row.lesion_map_hashes["HE"]).dtype == np.uint8


def test_store_prediction_refuses_maps_of_another_size(Session, data_dir):
    from _support_feedback import png_bytes

    from db.ingest import ingest_image
    from drgnet.inference import LesionSummary, Prediction
    from feedback.predictions import store_prediction

    photo = np.zeros((40, 50, 3), np.uint8)
    pred = Prediction(
        grade=1,
        probs=np.array([0.1, 0.6, 0.1, 0.1, 0.1]),
        referable_probability=0.3,
        uncertainty=0.5,
        lesion_probs=np.zeros((4, 50, 40), np.float32),  # transposed: not the photograph's size
        attention=np.zeros((50, 40), np.float32),
        lesions={n: LesionSummary(0.0, 0, 0.0) for n in ("MA", "HE", "EX", "SE")},
        fov_mask=np.ones((50, 40), bool),
    )
    with Session.begin() as s:
        image = ingest_image(s, png_bytes(photo), "eye.png", data_dir=data_dir).image
        with pytest.raises(
            ValueError, match=r"eye.png: the prediction's maps are 40x50, the stored photograph is 50x40"
        ):
            store_prediction(s, image, pred, model_name="m", data_dir=data_dir)
