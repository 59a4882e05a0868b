"""Synthetic cohort generation speed: parallel cohort against a serial baseline in the same run."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from drgnet.data import synthetic


@dataclass(frozen=True)
class SynthBench:
    n: int
    size: int
    workers: int
    seconds: float  # the whole cohort, written to disk
    serial_n: int
    serial_seconds: float  # baseline: one process, same image size

    @property
    def images_per_second(self) -> float:
        return self.n / self.seconds

    @property
    def serial_images_per_second(self) -> float:
        return self.serial_n / self.serial_seconds

    @property
    def speedup(self) -> float:
        return self.images_per_second / self.serial_images_per_second

    def markdown(self) -> str:
        return "\n".join(
            [
                f"# Synthetic cohort generation ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
                "",
                "| run | images | size | workers | seconds | images/s | ratio to serial |",
                "|---|---:|---:|---:|---:|---:|---:|",
                f"| serial baseline | {self.serial_n} | {self.size} | 1 | {self.serial_seconds:.1f} | "
                f"{self.serial_images_per_second:.2f} | 1.00 |",
                f"| cohort | {self.n} | {self.size} | {self.workers} | {self.seconds:.1f} | "
                f"{self.images_per_second:.2f} | {self.speedup:.2f} |",
                "",
                f"Target: 500 images at 512 px in under 180 s; projected for this machine: "
                f"{500 / self.images_per_second:.0f} s.",
            ]
        )


def run(n: int = 500, size: int = 512, serial_n: int = 20, workers: int | None = None) -> SynthBench:
    """Time a serial baseline on ``serial_n`` images, then the full ``n``-image cohort in parallel."""
    workers = workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="drgnet-bench-synth-") as tmp:
        t0 = time.perf_counter()
        synthetic.generate_cohort(Path(tmp) / "serial", n=serial_n, size=size, seed=1, workers=1, progress=False)
        serial_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        synthetic.generate_cohort(Path(tmp) / "cohort", n=n, size=size, seed=2, workers=workers, progress=True)
        seconds = time.perf_counter() - t0
    return SynthBench(n, size, workers, seconds, serial_n, serial_seconds)
