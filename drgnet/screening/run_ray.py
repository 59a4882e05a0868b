"""``screen_ray``: the same per-batch scoring in a pool of model actors on Ray Data, for a cluster."""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drgnet.screening.inputs import collect_inputs
from drgnet.screening.loading import prepare_item
from drgnet.screening.outputs import ResultWriter, one_line
from drgnet.screening.run_local import EngineSpec, ScreenSummary, _progress
from drgnet.screening.scoring import ScreenOptions, error_row, score_batch
from drgnet.screening.sinks import ScreenSink


class RayScreener:
    """A Ray Data model actor: builds its engine once, then turns batches of paths into JSON rows.

    Rows travel as JSON strings so every value comes back exactly as the local path writes it (no Arrow
    type inference over columns that are sometimes null).
    """

    def __init__(
        self,
        spec: EngineSpec,
        options: ScreenOptions,
        skip: frozenset[str] = frozenset(),
        return_maps: bool = False,
    ) -> None:
        self.engine = spec.build()
        self.options = options
        self.skip = skip
        self.return_maps = return_maps

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keep = self.options.masks_dir is not None
        items = [
            prepare_item(
                str(p),
                self.engine.input_size,
                self.skip,
                keep,
                self.options.thresholds,
                self.options.max_file_bytes,
                self.engine.lesion_fov_px,
            )
            for p in batch["path"]
        ]
        collector = _MapCollector() if self.return_maps else None
        rows = score_batch(items, self.engine, self.options, collector)
        encoded = [json.dumps(r, allow_nan=False) if r is not None else "" for r in rows]
        out = {"row": np.array(encoded, dtype=object)}
        if collector is not None:
            out["maps"] = np.array([collector.maps.get(it.path, b"") for it in items], dtype=object)
        return out


class _MapCollector:
    """Keeps each scored photograph's model-resolution maps (float16 ``.npz`` bytes) for the Ray driver's sink:
    the actors may run on machines without the database, so the driver stores what they computed."""

    def __init__(self) -> None:
        self.maps: dict[str, bytes] = {}

    def store(self, item, row, grade_probs, lesion_probs, attention) -> None:  # noqa: ANN001 - ScreenSink.store
        buffer = io.BytesIO()
        np.savez(
            buffer,
            grade_probs=np.asarray(grade_probs, np.float32),
            lesion_probs=np.asarray(lesion_probs, np.float16),
            attention=np.asarray(attention, np.float16),
        )
        self.maps[item.path] = buffer.getvalue()

    def close(self) -> None:
        pass


def _store_from_actor(row: dict[str, Any], maps: bytes, sink: ScreenSink, options: ScreenOptions) -> dict[str, Any]:
    """On the Ray driver: hand an actor's row and maps to the sink (reading the photograph again for its bytes
    and geometry). Returns the row, or an error row when the photograph changed meanwhile or the sink refused it."""
    with np.load(io.BytesIO(maps)) as z:
        probs, lesion_probs, attention = (z[k].astype(np.float32) for k in ("grade_probs", "lesion_probs", "attention"))
    item = prepare_item(
        row["path"],
        attention.shape[-1],  # the global view's side (lesion maps may come from a larger lesion view)
        keep_original=True,
        thresholds=options.thresholds,
        max_bytes=options.max_file_bytes,
    )
    if item.sha256 != row["sha256"] or not item.ready:
        item.error = f"{row['path']}: not stored: the file changed or vanished during screening"
    else:
        try:
            sink.store(item, row, probs, lesion_probs, attention)
            return row
        except ValueError as exc:
            item.error = one_line(f"not stored: {exc}")
    failed = error_row(item, row["engine"], row["model_version"])
    failed["sha256"] = row["sha256"]
    return failed


def _ray_session(address: str) -> bool:
    """Connect to (or start) Ray; True when this call started it and should shut it down."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
    import ray

    if ray.is_initialized():
        return False
    try:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ValueError(
            f"cannot connect to Ray at {address!r} ({one_line(str(exc))}); `--ray local` starts Ray on this machine"
        ) from exc
    return True


def screen_ray(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    spec: EngineSpec,
    options: ScreenOptions | None = None,
    address: str = "auto",
    concurrency: int = 2,
    batch_size: int = 8,
    cpus_per_actor: float = 1.0,
    progress: bool = True,
    sink: ScreenSink | None = None,
) -> ScreenSummary:
    """Screen on Ray Data: paths -> ``map_batches`` over a pool of ``concurrency`` model actors -> rows.

    The driver lists the inputs, streams rows back and writes them exactly as ``screen`` does (same columns,
    resume by sha256). Every node must see the photographs (and the mask folder) under the same paths, and
    have drgnet installed.

    Args:
        address: A Ray cluster address, ``"auto"`` (the cluster this machine belongs to) or ``"local"``
            (start one here). Ignored when Ray is already initialised in this process.
        concurrency: Model actors (each loads the model once).
        cpus_per_actor: CPUs Ray reserves per actor (also its torch threads).
        sink: Store every scored photograph here, on the driver (the actors send their maps back for it).
    """
    import ray

    options = options or ScreenOptions()
    started = _ray_session(address)
    t0 = time.perf_counter()
    try:
        paths = collect_inputs(inputs)
        with ResultWriter(out) as writer:
            summary = ScreenSummary(Path(out), images=len(paths), dropped_partial_line=writer.dropped_partial_line)
            if paths:
                ctx = ray.data.DataContext.get_current()
                ctx.execution_options.preserve_order = True
                ctx.enable_progress_bars = False
                threads = max(1, int(cpus_per_actor))
                actor_spec = EngineSpec(spec.kind, spec.checkpoint, spec.onnx, spec.channels_last, threads)
                blocks = max(1, min(len(paths), math.ceil(len(paths) / max(1, batch_size))))
                ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=blocks)
                ds = ds.map_batches(
                    RayScreener,
                    fn_constructor_kwargs={
                        "spec": actor_spec,
                        "options": options,
                        "skip": frozenset(writer.done),
                        "return_maps": sink is not None,
                    },
                    batch_size=max(1, batch_size),
                    batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(size=max(1, concurrency)),
                    num_cpus=cpus_per_actor,
                )
                with _progress(len(paths), progress, "screening (ray)") as bar:
                    for record, maps in _iter_rows(ds):
                        row = json.loads(record) if record else None
                        if sink is not None and row is not None and row["status"] == "ok":
                            row = _store_from_actor(row, maps, sink, options)
                        summary.count(row)
                        if row is not None:
                            writer.write(row)
                        bar.update(1)
    finally:
        if started:
            ray.shutdown()
    summary.seconds = time.perf_counter() - t0
    return summary


def _iter_rows(ds: Any) -> Iterator[tuple[str, bytes]]:
    for row in ds.iter_rows():
        yield row["row"], row.get("maps", b"")
