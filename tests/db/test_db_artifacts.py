"""The content-addressed artifact store: round trips, corruption, atomic writes, garbage collection."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from db import repository as repo
from db.artifacts import (
    TEMP_PREFIX,
    ArtifactStore,
    artifact_store,
    collect_garbage,
    referenced_artifact_hashes,
    sha256_hex,
)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_png_round_trip_is_lossless_and_content_addressed(store: ArtifactStore):
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 256, size=(37, 53), dtype=np.uint8)
    sha = store.put_png(mask)
    path = store.root / sha[:2] / f"{sha[2:]}.png"
    assert path.is_file() and sha256_hex(path.read_bytes()) == sha
    back = store.get_png(sha)
    assert back.dtype == np.uint8 and np.array_equal(back, mask)
    assert store.put_png(mask.copy()) == sha  # same content, same file
    assert len(list(store.iter_files())) == 1
    rgb = rng.integers(0, 256, size=(8, 9, 3), dtype=np.uint8)
    assert np.array_equal(store.get_png(store.put_png(rgb)), rgb)


def test_png_refuses_what_it_cannot_store_losslessly(store: ArtifactStore):
    with pytest.raises(ValueError, match="uint8.*put_npz"):
        store.put_png(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        store.put_png(np.zeros((4, 4, 2), dtype=np.uint8))


def test_npz_round_trip_of_float_maps_is_deterministic(store: ArtifactStore):
    rng = np.random.default_rng(1)
    maps = {"MA": rng.random((16, 16), dtype=np.float32), "HE": rng.random((16, 16)).astype(np.float16)}
    sha = store.put_npz(maps)
    assert store.put_npz(dict(reversed(list(maps.items())))) == sha
    back = store.get_npz(sha)
    assert set(back) == {"MA", "HE"}
    for key in maps:
        assert back[key].dtype == maps[key].dtype and np.array_equal(back[key], maps[key])
    single = store.get_npz(store.put_npz(maps["MA"]))
    assert np.array_equal(single["map"], maps["MA"])
    with pytest.raises(ValueError, match="only numeric"):
        store.put_npz({"x": np.array([object()])})


def test_corruption_is_detected_and_names_the_file(store: ArtifactStore):
    sha = store.put_png(np.full((8, 8), 255, dtype=np.uint8))
    path = store.find(sha)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{path}: artifact is corrupt"):
        store.get_png(sha)
    # Storing the same content again repairs it.
    assert store.put_png(np.full((8, 8), 255, dtype=np.uint8)) == sha
    assert store.get_png(sha).min() == 255


def test_missing_and_malformed_hashes(store: ArtifactStore):
    with pytest.raises(FileNotFoundError, match="not in the store"):
        store.get_bytes("ab" * 32)
    with pytest.raises(ValueError, match="not a sha256"):
        store.get_bytes("../../etc/passwd")


def test_a_failed_write_leaves_neither_a_final_nor_a_temp_file(store: ArtifactStore, monkeypatch):
    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.put_bytes(b"some mask", "png")
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_gc_removes_only_unreferenced_files(store: ArtifactStore):
    keep = store.put_bytes(b"referenced", "png")
    drop = store.put_bytes(b"orphan", "png")
    young = store.put_bytes(b"just written, row not committed yet", "npz")
    for sha in (keep, drop):
        _age(store.find(sha), 7200)
    folder = store.root / keep[:2]
    old_tmp, new_tmp = folder / f"{TEMP_PREFIX}dead", folder / f"{TEMP_PREFIX}live"
    old_tmp.write_bytes(b"half a fi")
    new_tmp.write_bytes(b"being writ")
    _age(old_tmp, 120)
    foreign = store.root / "README"
    foreign.write_text("not ours")

    dry = store.gc({keep}, dry_run=True)
    assert [p.name for p in dry.removed] == [store.find(drop).name] and store.exists(drop)

    report = store.gc({keep})
    assert report.removed == [store.root / store.relative_path(drop, "png")]
    assert report.temp_removed == [old_tmp]
    assert store.exists(keep) and not store.exists(drop) and store.exists(young)
    assert new_tmp.exists() and foreign.exists()
    assert report.bytes_freed == len(b"orphan") + len(b"half a fi")

    report = store.gc({keep}, min_age_s=0, temp_min_age_s=0)
    assert not store.exists(young) and not new_tmp.exists() and store.exists(keep)


def test_referenced_hashes_come_from_predictions_and_annotations(Session: sessionmaker[Session], data_dir: Path):
    store = artifact_store(data_dir)
    ma, he, att, mask, orphan = (store.put_png(np.full((4, 4), i, dtype=np.uint8)) for i in range(5))
    with Session.begin() as session:
        user = repo.create_user(session, "ana", "ana-quiet-harbour-7", "clinician")
        image, _ = repo.add_image(session, sha256="f" * 64, path="p", original_filename="a.jpg", width=4, height=4)
        repo.add_prediction(
            session,
            image.id,
            grade=1,
            probabilities=[0.2] * 5,
            model_name="demo",
            lesion_map_hashes={"MA": ma, "HE": he},
            attention_map_hash=att,
        )
        repo.add_annotation(session, image.id, user.id, kind="partial", grade=1, mask_hashes={"MA": {"painted": mask}})
    with Session() as session:
        assert referenced_artifact_hashes(session) == {ma, he, att, mask}
        reports = collect_garbage(session, data_dir, min_age_s=0)
    assert [p.name for p in reports["artifacts"].removed] == [f"{orphan[2:]}.png"]
    assert not store.exists(orphan) and all(store.exists(h) for h in (ma, he, att, mask))
