"""Seed a database for the review app: a registered active model, two accounts and predicted photographs.

``drgnet app --seed-demo`` (and so ``make demo``) calls :func:`seed_demo` with the shipped base model; the tests call
:func:`seed` with a tiny model. Both are idempotent: a second run reuses the model version, the accounts and the
stored photographs and predictions. Passwords are generated, printed once and never written to disk (only their
argon2 hashes are stored); an account that already exists keeps its password.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from db import migrate, repository
from db.engine import DATABASE_URL_ENV, SQLITE_FILENAME, make_engine, make_sessionmaker
from db.ingest import ingest_image
from db.models import Role
from drgnet.inference import Predictor
from feedback.predictions import predict_and_store

DEMO_USERS = {"admin": Role.ADMIN, "clinician": Role.CLINICIAN}


def database_url_for(data_dir: Path) -> str:
    """``DRGNET_DATABASE_URL`` if set, else the SQLite file in ``data_dir`` (what the app opens by default)."""
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{(Path(data_dir) / SQLITE_FILENAME).resolve()}"


def seed(
    data_dir: Path,
    checkpoint: Path,
    images: Sequence[Path],
    *,
    metrics: Mapping[str, Any] | None = None,
    version_name: str = "demo",
    source: str = "demo-cohort",
    passwords: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, str | None]:
    """Migrate the database, register ``checkpoint`` as the active version, add accounts, ingest and predict.

    Returns:
        User name -> the new password, or None for an account that already existed.
    """
    data_dir = Path(data_dir).resolve()
    checkpoint = Path(checkpoint).resolve()
    url = database_url_for(data_dir)
    migrate.upgrade(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    created: dict[str, str | None] = {}
    try:
        meta = json.loads((checkpoint / "checkpoint.json").read_text())
        with factory.begin() as session:
            version = repository.get_model_version_by_name(session, version_name)
            if version is None:
                version = repository.add_model_version(
                    session,
                    version_name,
                    str(checkpoint),
                    meta["weights_sha256"],
                    config=meta.get("model", {}),
                    metrics=dict(metrics or {}),
                )
                log(f"registered model version {version_name!r} ({checkpoint})")
            if repository.active_model_version(session) is None:
                repository.promote_model_version(session, version.id, reason="demo seeding")
            version_id = version.id
            for name, role in DEMO_USERS.items():
                if repository.get_user(session, name) is not None:
                    created[name] = None
                    continue
                password = (passwords or {}).get(name) or secrets.token_urlsafe(12)
                repository.create_user(session, name, password, role)
                created[name] = password
        predictor = Predictor.from_checkpoint(checkpoint)
        new = 0
        for i, path in enumerate(images, 1):
            with factory.begin() as session:
                result = ingest_image(
                    session, Path(path).read_bytes(), Path(path).name, data_dir=data_dir, source=source
                )
                if repository.latest_prediction(session, result.image.id) is None:
                    start = time.perf_counter()
                    predict_and_store(session, result.image, predictor, model_version_id=version_id, data_dir=data_dir)
                    new += 1
                    # A base-model prediction (lesion maps at 1024 px) takes seconds: say how far seeding is.
                    log(f"  predicted {i}/{len(images)} {Path(path).name} ({time.perf_counter() - start:.1f} s)")
        log(f"{len(images)} photographs in the review queue ({new} newly predicted)")
    finally:
        engine.dispose()
    return created


def seed_demo(data_dir: Path, n_images: int = 30, log: Callable[[str], None] = print) -> dict[str, str | None]:
    """Seed the app with the shipped base model (no training) and ``n_images`` synthetic photographs it never saw."""
    from drgnet.training.demo import ensure_demo_model

    model = ensure_demo_model(Path(data_dir), log=log)
    images = sorted(model.photographs.glob("*.jpg"))[-n_images:]
    created = seed(Path(data_dir), model.checkpoint, images, metrics=model.metrics, version_name=model.name, log=log)
    for name, password in created.items():
        if password is None:
            log(f"account {name!r} exists already (its password was printed when it was created)")
        else:
            log(f"account {name!r} ({DEMO_USERS[name].value}) password: {password}")
    return created
