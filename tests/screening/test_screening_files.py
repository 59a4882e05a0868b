"""drgnet screen reads only regular files below a size limit and says why it skipped the rest: /dev/zero listed in
a CSV, a FIFO, a folder, a file that is too big, a GIF and a multi-page TIFF; it never hangs or reads forever."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drgnet.data.synthetic import generate_fundus
from drgnet.screening import read_photo_file, read_results

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")


def test_read_photo_file_refuses_without_reading(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(ValueError, match=r"pipe\.jpg: a FIFO \(named pipe\), not a photograph file"):
        read_photo_file(str(fifo))
    with pytest.raises(ValueError, match="/dev/zero: a character device"):
        read_photo_file("/dev/zero")
    with pytest.raises(ValueError, match="a folder"):
        read_photo_file(str(tmp_path))
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\0" * 5000)
    with pytest.raises(ValueError, match="over the limit"):
        read_photo_file(str(big), max_bytes=4096)
    assert read_photo_file(str(big), max_bytes=5000) == b"\0" * 5000
    assert time.monotonic() - t0 < 5


def test_screen_reports_every_unreadable_input_and_finishes(tiny_checkpoint, tmp_path):
    photo = tmp_path / "good.jpg"
    photo.write_bytes(generate_fundus(2, 128, 1).jpeg)
    fifo = tmp_path / "camera-pipe.jpg"
    os.mkfifo(fifo)
    folder = tmp_path / "a-folder.jpg"
    folder.mkdir()
    big = tmp_path / "huge.png"
    big.write_bytes(photo.read_bytes() + b"\0" * (2 * 2**20))  # 2 MB, over a 1 MB limit
    frame = Image.open(io.BytesIO(photo.read_bytes()))
    frame.save(tmp_path / "anim.gif", save_all=True, append_images=[frame.rotate(90)])
    frame.save(tmp_path / "pages.tif", save_all=True, append_images=[frame.rotate(90)])
    listing = tmp_path / "list.csv"
    with listing.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path"])
        for p in ("/dev/zero", fifo, folder, big, tmp_path / "anim.gif", tmp_path / "pages.tif", photo):
            w.writerow([str(p)])
    out = tmp_path / "r.csv"
    cmd = [sys.executable, "-m", "drgnet.cli", "screen", str(listing), "--checkpoint", str(tiny_checkpoint)]
    cmd += ["--out", str(out), "--workers", "0", "--no-progress", "--max-file-mb", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The old code read /dev/zero until MemoryError and blocked forever on the FIFO: a timeout is the test.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    rows = {Path(r["path"]).name: r for r in read_results(out)}
    errors = {name: r["error"] for name, r in rows.items() if r["status"] == "error"}
    assert rows["good.jpg"]["status"] == "ok"
    assert "a character device, not a photograph file" in errors["zero"]
    assert "a FIFO (named pipe)" in errors["camera-pipe.jpg"]
    assert "a folder" in errors["a-folder.jpg"]
    assert "over the limit of 1 MB" in errors["huge.png"]
    assert "a GIF" in errors["anim.gif"]
    assert "a multi-page TIFF (2 pages)" in errors["pages.tif"]


def test_multi_page_tiff_is_refused_by_ingestion():
    from db.ingest import prepare_image

    frame = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    buf = io.BytesIO()
    frame.save(buf, format="TIFF", save_all=True, append_images=[frame])
    with pytest.raises(ValueError, match=r"scan\.tif: a multi-page TIFF \(2 pages\)"):
        prepare_image(buf.getvalue(), "scan.tif")
