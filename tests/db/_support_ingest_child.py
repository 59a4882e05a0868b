"""Child process of the crash test: ingests photographs one transaction each, then stalls where it is told to.

Usage: python _support_ingest_child.py URL DATA_DIR N STALL_AT MODE

MODE ``after_write``: the N-th image's file is stored, the process announces ``written SHA`` and sleeps before the
row is committed. MODE ``during_write``: the process sleeps inside the atomic write of the N-th image, after the
bytes went to the temporary file and before it is renamed (announces ``writing``). Every commit is announced with
``committed SHA``. The parent kills the process with SIGKILL at the stall.
"""

from __future__ import annotations

import io
import os
import sys
import time

import numpy as np
from PIL import Image as PILImage

import db.artifacts
from db.engine import make_engine, make_sessionmaker
from db.ingest import ingest_image


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    url, data_dir, n, stall_at, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    Session = make_sessionmaker(make_engine(url))  # noqa: N806
    current = {"index": -1}

    original_put = db.artifacts.ArtifactStore.put_bytes
    original_fsync = os.fsync

    def put_then_stall(self, data: bytes, ext: str = "bin") -> str:
        sha = original_put(self, data, ext)
        _say(f"written {sha}")
        if mode == "after_write" and current["index"] == stall_at:
            time.sleep(120)
        return sha

    def fsync_then_stall(fd: int) -> None:
        original_fsync(fd)
        if mode == "during_write" and current["index"] == stall_at:
            _say("writing")
            time.sleep(120)

    db.artifacts.ArtifactStore.put_bytes = put_then_stall
    os.fsync = fsync_then_stall

    rng = np.random.default_rng(0)
    for i in range(n):
        current["index"] = i
        buf = io.BytesIO()
        PILImage.fromarray(rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
        with Session.begin() as session:
            image = ingest_image(session, buf.getvalue(), f"batch/{i}.png", data_dir=data_dir).image
            sha = image.sha256
        _say(f"committed {sha}")
    _say("finished")


if __name__ == "__main__":
    main()
