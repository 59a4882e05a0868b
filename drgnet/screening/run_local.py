"""``screen``: a local run, with DataLoader workers, an engine, a sink pipeline, resume and progress."""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drgnet.screening.inputs import collect_inputs
from drgnet.screening.loading import ScreeningDataset, ScreenItem, _as_list, _loader_context, _worker_init
from drgnet.screening.outputs import ResultWriter, one_line
from drgnet.screening.scoring import ScreenOptions, error_row, score_batch
from drgnet.screening.sinks import ScreenSink


@dataclass
class ScreenSummary:
    out: Path
    images: int = 0  # inputs found
    scored: int = 0  # rows with status ok written now
    errors: int = 0  # rows with status error written now
    skipped: int = 0  # already in the output
    ungradable: int = 0
    referable: int = 0
    seconds: float = 0.0
    dropped_partial_line: bool = False

    def count(self, row: dict[str, Any] | None) -> None:
        if row is None:
            self.skipped += 1
        elif row["status"] == "ok":
            self.scored += 1
            self.ungradable += not row["gradable"]
            self.referable += bool(row["referable"])
        else:
            self.errors += 1

    def describe(self) -> str:
        rate = (self.scored + self.errors) / self.seconds if self.seconds > 0 else float("nan")
        text = (
            f"{self.images} photographs: {self.scored} scored ({self.referable} referable, {self.ungradable} "
            f"ungradable), {self.errors} errors, {self.skipped} already in {self.out}; "
            f"{self.seconds:.1f} s ({rate:.1f} photographs/s)"
        )
        if self.dropped_partial_line:
            text += "; a cut-off last line of the previous run was dropped"
        return text


@dataclass(frozen=True)
class EngineSpec:
    """How to build an engine; picklable, so Ray actors build their own."""

    kind: str = "torch"  # "torch" or "onnx"
    checkpoint: str | None = None
    onnx: str | None = None
    channels_last: bool = True
    threads: int = 0  # torch / ONNX Runtime intra-op threads (0: library default)
    lesion_fov_px: int | None = None  # side of the lesion view; None: the model's, 0: the global view's maps

    def build(self) -> Any:
        from drgnet.engines import OnnxEngine, TorchEngine

        if self.kind == "torch":
            if not self.checkpoint:
                raise ValueError("the torch engine needs --checkpoint")
            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            engine = TorchEngine.from_checkpoint(self.checkpoint, channels_last=self.channels_last)
        elif self.kind == "onnx":
            if not self.onnx:
                raise ValueError("the onnx engine needs --onnx MODEL.onnx (write one with `drgnet export-onnx`)")
            engine = OnnxEngine(self.onnx, threads=self.threads)
        else:
            raise ValueError(f"unknown engine {self.kind!r}; choose torch or onnx")
        if self.lesion_fov_px is not None:
            engine.lesion_fov_px = self.lesion_fov_px
        return engine


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="image", desc=desc, disable=not enabled)


def screen(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    engine: Any,
    options: ScreenOptions | None = None,
    batch_size: int = 8,
    workers: int = 2,
    progress: bool = True,
    sink: ScreenSink | None = None,
) -> ScreenSummary:
    """Screen photographs on this machine and append one row per photograph to ``out``.

    Args:
        inputs: Folders, glob patterns, files and CSV lists (see ``collect_inputs``).
        out: ``.csv`` or ``.jsonl`` file; an existing one is resumed.
        engine: A ``TorchEngine`` or ``OnnxEngine`` (or an ``EngineSpec`` to build one).
        options: Lesion threshold, mask folder, quality thresholds.
        batch_size: Photographs per forward pass.
        workers: DataLoader worker processes that read and preprocess (0: in this process).
        progress: Show a progress bar.
        sink: Also hand every scored photograph to this sink (``load_sink("db", ...)``: the review worklist).
    """
    from torch.utils.data import DataLoader

    options = options or ScreenOptions()
    if isinstance(engine, EngineSpec):
        engine = engine.build()
    t0 = time.perf_counter()
    paths = collect_inputs(inputs)
    with ResultWriter(out) as writer:
        summary = ScreenSummary(Path(out), images=len(paths), dropped_partial_line=writer.dropped_partial_line)
        keep = options.masks_dir is not None or sink is not None
        dataset = ScreeningDataset(
            paths,
            engine.input_size,
            writer.done,
            keep,
            options.thresholds,
            max_bytes=options.max_file_bytes,
            lesion_fov_px=engine.lesion_fov_px,
        )
        loader = DataLoader(
            dataset,
            batch_size=max(1, batch_size),
            num_workers=workers,
            collate_fn=_as_list,
            worker_init_fn=_worker_init if workers else None,
            multiprocessing_context=_loader_context() if workers else None,
        )
        with _progress(len(paths), progress, "screening") as bar:
            if sink is None:
                for batch in loader:
                    for row in score_batch(batch, engine, options):
                        summary.count(row)
                        if row is not None:
                            writer.write(row)
                    bar.update(len(batch))
            else:
                with _StoringPipeline(sink, engine, writer, summary, bar, depth=2 * max(1, batch_size)) as pipeline:
                    for batch in loader:
                        pipeline.add(batch, score_batch(batch, engine, options, pipeline))
    summary.seconds = time.perf_counter() - t0
    return summary


class _StoringPipeline:
    """Stores scored photographs in a background thread while the model works on the next batch.

    It stands in for the sink in ``score_batch`` (``store`` queues the work) and writes each row only after its
    photograph was stored, in input order, so a row in the output still means "stored". A ``ValueError`` from the
    sink turns the row into an error row, as in the synchronous path; any other exception stops the run after the
    rows before it are written. At most ``depth`` photographs wait, which bounds the memory their pixels hold.
    """

    def __init__(
        self, sink: ScreenSink, engine: Any, writer: ResultWriter, summary: ScreenSummary, bar: Any, depth: int
    ):
        from concurrent.futures import ThreadPoolExecutor

        self.sink, self.engine, self.writer, self.summary, self.bar = sink, engine, writer, summary, bar
        self.depth = depth
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="drgnet-store")
        self.queued: list[Any] = []  # futures of the batch being scored
        self.pending: collections.deque[tuple[ScreenItem, dict[str, Any] | None, Any]] = collections.deque()

    def store(self, item, row, grade_probs, lesion_probs, attention) -> None:  # noqa: ANN001 - ScreenSink.store
        self.queued.append(self.pool.submit(self.sink.store, item, row, grade_probs, lesion_probs, attention))

    def close(self) -> None:
        pass

    def add(self, batch: Sequence[ScreenItem], rows: list[dict[str, Any] | None]) -> None:
        futures = iter(self.queued)
        for item, row in zip(batch, rows, strict=True):
            stored = next(futures) if row is not None and row["status"] == "ok" else None
            self.pending.append((item, row, stored))
        self.queued = []
        self._flush(block=False)
        while len(self.pending) > self.depth:
            self._write_first()

    def _flush(self, block: bool) -> None:
        """Write the leading rows whose photographs are stored (all of them, waiting, with ``block``)."""
        while self.pending and (block or self.pending[0][2] is None or self.pending[0][2].done()):
            self._write_first()

    def _write_first(self) -> None:
        item, row, stored = self.pending.popleft()
        if stored is not None:
            try:
                stored.result()
            except ValueError as exc:
                item.error = one_line(f"not stored: {exc}")
                row = error_row(item, self.engine.name, self.engine.model_version)
        self.summary.count(row)
        if row is not None:
            self.writer.write(row)
        self.bar.update(1)

    def __enter__(self) -> _StoringPipeline:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                self._flush(block=True)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
