"""Peak memory of ``drgnet predict`` (and ``--overlay``) on a generated 79-megapixel photograph.

Each measurement runs in a fresh subprocess and reads its peak resident set size from ``getrusage``::

    python scripts/big_image_memory.py [--width 10240 --height 7680] [--draw-max-pixels N]

Writes nothing to the repository (a temporary folder holds the photograph and a tiny random checkpoint).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def _peak_rss_mb(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run ``cmd`` in a subprocess of a subprocess (so each measurement's peak is its own) and return its peak."""
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], env=env, capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-2000:])
    return int(lines[-1]) / 1024.0, out.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=10240)
    parser.add_argument("--height", type=int, default=7680)
    parser.add_argument("--draw-max-pixels", type=int, default=None, help="DRGNET_DRAW_MAX_PIXELS for the runs")
    args = parser.parse_args()

    import cv2
    import numpy as np
    import torch

    from drgnet.config import ModelConfig
    from drgnet.data.synthetic import generate_fundus
    from drgnet.model import DRGNet
    from drgnet.model.checkpoint import save_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        small = cv2.imdecode(np.frombuffer(generate_fundus(2, 1024, 1).jpeg, np.uint8), cv2.IMREAD_COLOR)
        side = min(args.width, args.height)  # a round field of view, centred on a black frame like a camera's
        big = np.zeros((args.height, args.width, 3), np.uint8)
        y0, x0 = (args.height - side) // 2, (args.width - side) // 2
        big[y0 : y0 + side, x0 : x0 + side] = cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR)
        photo = root / "big.jpg"
        cv2.imwrite(str(photo), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
        del big, small
        torch.manual_seed(0)
        cfg = ModelConfig(encoder_weights=None, input_size=256, decoder_channels=(32, 16, 16, 8, 8), embed_dim=32)
        ckpt = save_checkpoint(root / "ckpt", DRGNet(cfg).eval(), cfg)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        if args.draw_max_pixels is not None:
            env["DRGNET_DRAW_MAX_PIXELS"] = str(args.draw_max_pixels)
        drgnet = [sys.executable, "-m", "drgnet.cli", "predict", str(photo), "--checkpoint", str(ckpt)]
        mp = args.width * args.height / 1e6
        print(f"photograph {args.width}x{args.height} ({mp:.1f} MP), DRGNET_DRAW_MAX_PIXELS={args.draw_max_pixels}")
        peak, rc = _peak_rss_mb(drgnet, env)
        print(f"predict            peak RSS {peak:8.0f} MB (exit {rc})")
        peak, rc = _peak_rss_mb([*drgnet, "--overlay", str(root / "overlay")], env)
        print(f"predict --overlay  peak RSS {peak:8.0f} MB (exit {rc})")
        for f in sorted((root / "overlay").glob("*")):
            h, w = cv2.imread(str(f)).shape[:2]
            print(f"overlay {f.name}: {w}x{h}")


if __name__ == "__main__":
    main()
