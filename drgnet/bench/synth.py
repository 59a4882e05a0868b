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


@dataclass(frozen=True)
class SynthBenchConfig:
    n: int = 500  # photographs of the timed cohort (the target: 500 at 512 px in under 180 s)
    size: int = 512  # their side, pixels
    serial_n: int = 20  # photographs of the serial baseline (one process)
    workers: int = 0  # generating processes of the cohort; 0: one per core


def run(cfg: SynthBenchConfig | None = None) -> SynthBench:
    """Time a serial baseline on ``cfg.serial_n`` images, then the full ``cfg.n``-image cohort in parallel."""
    cfg = cfg or SynthBenchConfig()
    if cfg.n < 1 or cfg.serial_n < 1 or cfg.size < 64 or cfg.workers < 0:
        raise ValueError(f"n and serial_n >= 1, size >= 64 and workers >= 0 are needed, got {cfg}")
    n, size, serial_n = cfg.n, cfg.size, cfg.serial_n
    workers = cfg.workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="drgnet-bench-synth-") as tmp:
        t0 = time.perf_counter()
        synthetic.generate_cohort(Path(tmp) / "serial", n=serial_n, size=size, seed=1, workers=1, progress=False)
        serial_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        synthetic.generate_cohort(Path(tmp) / "cohort", n=n, size=size, seed=2, workers=workers, progress=True)
        seconds = time.perf_counter() - t0
    return SynthBench(n, size, workers, seconds, serial_n, serial_seconds)
