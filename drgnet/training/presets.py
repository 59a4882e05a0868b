"""Named training presets (``drgnet train --preset NAME``); ``--data`` and flags override fields."""

from __future__ import annotations

from drgnet.config import LossConfig, MixSource, ModelConfig, TrainConfig

#: Healthy real photographs ``base`` never trains on: its model card reports their grades as held-out ones.
BASE_HELD_OUT_HEALTHY = ("DRIVE_40", "CHASEDB1_12R")

PRESETS: dict[str, TrainConfig] = {
    # Seconds on a laptop CPU: for tests and smoke runs. Random encoder, 64 px.
    "tiny": TrainConfig(
        # A 128 px lesion view (2 x 2 tiles of 64 px with overlap) so tests exercise the tiled path.
        model=ModelConfig(
            encoder_weights=None, input_size=64, decoder_channels=(32, 16, 16, 8, 8), embed_dim=32, lesion_fov_px=128
        ),
        epochs=2,
        batch_size=4,
        lr=2e-3,
        augment="light",
    ),
    # The demo model: ImageNet-initialised EfficientNet-Lite0 at 224 px, a few minutes on 2 CPU cores.
    "demo": TrainConfig(
        model=ModelConfig(input_size=224, decoder_channels=(64, 48, 32, 24, 16), embed_dim=96),
        loss=LossConfig(),
        epochs=8,
        batch_size=8,
        lr=2e-3,
        augment="light",
    ),
    # A real run at 512 px: global views for the grade plus crops of a 1024 px lesion view for the lesion maps.
    "full": TrainConfig(
        model=ModelConfig(input_size=512, lesion_fov_px=1024),
        epochs=40,
        batch_size=8,
        lr=1e-3,
        augment="default",
        crops_per_global=2,
    ),
    # The shipped base model (models/drgnet-base), sized for one CPU thread in about two hours: 384 px global views
    # plus crops of a 1024 px lesion view (a median microaneurysm spans ~5 px there), a calibrated synthetic cohort
    # (--data) mixed with the four real IDRiD photographs and healthy real photographs as grade 0 (two held out).
    "base": TrainConfig(
        model=ModelConfig(input_size=384, lesion_fov_px=1024, decoder_channels=(64, 48, 32, 24, 16), embed_dim=96),
        epochs=10,
        max_steps_per_epoch=55,
        batch_size=8,
        lr=1e-3,
        augment="default",
        crops_per_global=2,
        lesion_crop_fraction=0.6,
        mix=(
            MixSource("idrid-train4", weight=16.0, min_grade=1),
            MixSource("real-healthy", grade=0, weight=12.0, exclude=BASE_HELD_OUT_HEALTHY),
        ),
    ),
}


def get_preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
