"""Screening speed: images/s and peak memory of each engine, and how far the model is from the CPU's limit.

Measured in one run on the same random images at the same input size: the reference structure (ResNet-50
grader + four per-lesion U-Nets, eager PyTorch), DRGNet in eager PyTorch, DRGNet in channels-last memory
format, and DRGNet exported to ONNX Runtime, each at batch 1 and batch 8. Every (engine, batch) runs in a fresh
subprocess so its peak resident memory (``VmHWM``, minus the resident size after the imports) is its own.
Ratios are against DRGNet eager at batch 1 from the same run: the machine is shared and noisy.

Achieved GFLOP/s = FLOPs per image (``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix
multiplies) x images/s, compared with the float32 matrix-multiply throughput measured on the same machine in the
same run (large ``torch.matmul``), which is about what its cores can do at best.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENGINES: dict[str, str] = {
    "reference": "Reference: ResNet-50 + 4 U-Nets (eager)",
    "drgnet_eager": "DRGNet, PyTorch eager",
    "drgnet_channels_last": "DRGNet, PyTorch channels-last",
    "drgnet_onnx": "DRGNet, ONNX Runtime",
}
BASELINE = ("drgnet_eager", 1)


@dataclass(frozen=True)
class SpeedBenchConfig:
    size: int = 512  # network input side
    batches: tuple[int, ...] = (1, 8)
    engines: tuple[str, ...] = tuple(ENGINES)
    min_iterations: int = 2  # timed forward passes per (engine, batch), after one warm-up pass
    min_seconds: float = 3.0  # ...and at least this long
    matmul_size: int = 2048
    threads: int = 0  # torch / ONNX Runtime threads (0: the libraries' default, one per core)
    seed: int = 0


def _job_engine(job: dict[str, Any]):
    """Build the engine a job names (runs in the measuring subprocess)."""
    from drgnet.engines import OnnxEngine, TorchEngine

    name = job["engine"]
    if name == "drgnet_onnx":
        return OnnxEngine(job["onnx"], threads=job["threads"])
    if name == "reference":
        import torch

        from drgnet.model.reference import ReferenceConfig, ReferenceModel

        torch.manual_seed(job["seed"])
        return TorchEngine(ReferenceModel(ReferenceConfig(input_size=job["size"])), channels_last=False)
    if name in ("drgnet_eager", "drgnet_channels_last"):
        return TorchEngine.from_checkpoint(job["checkpoint"], channels_last=name == "drgnet_channels_last")
    raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Time one engine at one batch size in this process; meant to run in a fresh subprocess."""
    import numpy as np
    import psutil
    import torch

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    base_rss = psutil.Process().memory_info().rss  # after the imports: what the engine itself adds is measured
    engine = _job_engine(job)
    images = np.random.default_rng(job["seed"]).integers(0, 256, (job["batch"], job["size"], job["size"], 3))
    images = images.astype(np.uint8)
    engine(images)  # warm-up: allocator, oneDNN primitive caches, ONNX Runtime's first-run planning
    n, t0 = 0, time.perf_counter()
    while n < job["min_iterations"] or time.perf_counter() - t0 < job["min_seconds"]:
        engine(images)
        n += 1
    seconds = time.perf_counter() - t0
    peak = _peak_rss_bytes()
    return {
        "engine": job["engine"],
        "batch": job["batch"],
        "iterations": n,
        "seconds": seconds,
        "images_per_s": job["batch"] * n / seconds,
        "peak_rss_delta_mib": max(peak - base_rss, 0) / 2**20,
    }


def _peak_rss_bytes() -> int:
    """This process's peak resident memory.

    Linux's ``VmHWM`` belongs to the process image, so it starts afresh at ``exec``; ``ru_maxrss`` does not (a
    child started from a large parent reports the parent's peak), so it is only the fallback elsewhere.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "drgnet.bench.speed", json.dumps(job)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"measuring {job['engine']} at batch {job['batch']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def flops_per_image(model, size: int) -> float:
    """FLOPs of one forward pass on one image (FlopCounterMode's convolution and matmul formulas)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, size, size)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model.eval()(x)
    return float(counter.get_total_flops())


def matmul_peak_gflops(n: int = 2048, repeats: int = 5, threads: int = 0) -> float:
    """Best float32 throughput of an ``n x n`` matrix multiply on this machine, GFLOP/s."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def run(cfg: SpeedBenchConfig, out: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every engine at every batch size; writes ``out/speed.md`` and ``out/speed.json``."""
    import torch

    from drgnet.config import ModelConfig
    from drgnet.engines import export_onnx
    from drgnet.model import DRGNet
    from drgnet.model.checkpoint import save_checkpoint
    from drgnet.model.reference import ReferenceConfig, ReferenceModel

    out, machine = start_run(cfg.engines, ENGINES, cfg.size, out)
    engines = list(dict.fromkeys((BASELINE[0], *cfg.engines)))  # the baseline is always measured
    batches = list(dict.fromkeys((BASELINE[1], *cfg.batches)))
    with tempfile.TemporaryDirectory(prefix="drgnet-bench-speed-") as tmp:
        torch.manual_seed(cfg.seed)
        # Default architecture (EfficientNet-Lite0 encoder); weights are random: speed does not depend on them.
        model_cfg = ModelConfig(encoder_weights=None, input_size=cfg.size)
        drgnet = DRGNet(model_cfg).eval()
        checkpoint = save_checkpoint(Path(tmp) / "ckpt", drgnet, model_cfg)
        onnx_path = Path(tmp) / "drgnet.onnx"
        if "drgnet_onnx" in engines:
            log("exporting DRGNet to ONNX")
            export_onnx(checkpoint, onnx_path)
        log("counting FLOPs")
        flops = {"drgnet": flops_per_image(drgnet, cfg.size)}
        if "reference" in engines:
            flops["reference"] = flops_per_image(ReferenceModel(ReferenceConfig(input_size=cfg.size)), cfg.size)
        del drgnet
        peak = matmul_peak_gflops(cfg.matmul_size, threads=cfg.threads)
        log(f"float32 matmul peak {peak:.1f} GFLOP/s")
        rows = []
        for engine in engines:
            for batch in batches:
                job = {
                    "engine": engine,
                    "batch": batch,
                    "size": cfg.size,
                    "checkpoint": str(checkpoint),
                    "onnx": str(onnx_path),
                    "threads": cfg.threads,
                    "seed": cfg.seed,
                    "min_iterations": cfg.min_iterations,
                    "min_seconds": cfg.min_seconds,
                }
                row = _run_job(job)
                row["gflop_per_image"] = flops["reference" if engine == "reference" else "drgnet"] / 1e9
                row["achieved_gflops"] = row["gflop_per_image"] * row["images_per_s"]
                row["fraction_of_peak"] = row["achieved_gflops"] / peak
                rows.append(row)
                log(
                    f"{ENGINES[engine]:42s} batch {batch}: {row['images_per_s']:.2f} images/s, "
                    f"peak RSS +{row['peak_rss_delta_mib']:.0f} MiB"
                )
    base = next(r for r in rows if (r["engine"], r["batch"]) == BASELINE)
    for r in rows:
        r["ratio"] = r["images_per_s"] / base["images_per_s"]
    result = {
        "config": dataclasses.asdict(cfg),
        "machine": machine,
        "matmul_peak_gflops": peak,
        "rows": rows,
    }
    (out / "speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "speed.md").write_text(markdown(result))
    return result


def start_run(engines: tuple[str, ...], known: dict[str, str], size: int, out: Path) -> tuple[Path, dict[str, Any]]:
    """Check a speed benchmark's engines and input size, make its output folder, describe the machine.

    Raises:
        ValueError: An unknown engine, or a size the network cannot take.
    """
    unknown = [e for e in engines if e not in known]
    if unknown:
        raise ValueError(f"unknown engine(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if size % 32:
        raise ValueError(f"input size must be a multiple of 32, got {size}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out, _machine()


def _machine() -> dict[str, Any]:
    import onnxruntime
    import torch

    return {
        "processor": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
    }


def markdown(result: dict[str, Any]) -> str:
    cfg, m = result["config"], result["machine"]
    lines = [
        f"# Screening speed ({cfg['size']} px input, {m['processor']}, {m['cores']} cores, torch {m['torch']}, "
        f"ONNX Runtime {m['onnxruntime']})",
        "",
        f"float32 matmul peak of this machine, same run ({cfg['matmul_size']}x{cfg['matmul_size']}): "
        f"**{result['matmul_peak_gflops']:.1f} GFLOP/s**. Ratios against DRGNet eager at batch 1 from the same run. "
        f"Load average when it started: {m['load_average']:.1f}.",
        "",
        "| engine | batch | images/s | ms/image | vs DRGNet eager b1 | peak RSS delta (MiB) | GFLOP/image "
        "| achieved GFLOP/s | of matmul peak |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {ENGINES[r['engine']]} | {r['batch']} | {r['images_per_s']:.2f} | {1000 / r['images_per_s']:.0f} | "
            f"{r['ratio']:.2f} | {r['peak_rss_delta_mib']:.0f} | {r['gflop_per_image']:.1f} | "
            f"{r['achieved_gflops']:.1f} | {100 * r['fraction_of_peak']:.0f}% |"
        )
    lines += [
        "",
        f"Each row: one warm-up pass, then at least {cfg['min_iterations']} timed passes and {cfg['min_seconds']} s, "
        "in a fresh process (peak RSS = VmHWM minus the resident size after imports). Input conversion "
        "(uint8 NHWC to float NCHW) is included for every engine.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
