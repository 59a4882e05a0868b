"""Batch screening: thousands of photographs in, one row per photograph out (CSV or JSONL).

Each row holds the file's sha256, the ICDR grade with its five probabilities, the referable flag, an uncertainty
(normalised entropy), per-lesion area and count, and a gradability verdict with its reasons
(``drgnet.data.quality``). A photograph that cannot be scored (not an image, truncated, not a fundus photograph)
becomes a row with ``status=error`` and the reason; it never stops the run.

The output is written row by row with a flush, so a run that is killed leaves a valid file behind. Running
again with the same ``--out`` resumes: a cut-off last line is dropped, and photographs whose sha256 is already
in the file are skipped (a photograph that was renamed is not screened twice; one that was replaced is).
Rows without a sha256 (the file could not be read at all) are retried.

Local runs load and preprocess in DataLoader worker processes and run batches through an engine (PyTorch in
channels-last memory format, or ONNX Runtime; ``drgnet.engines``). ``screen_ray`` runs the same per-batch code
in a pool of model actors on Ray Data, for a cluster.

With a sink (``drgnet screen --db``; ``ScreenSink``, found by name among the ``drgnet.screen_sinks`` entry
points) every scored photograph is also stored with its prediction and maps, so it enters the review worklist;
a photograph is stored before its row is written, so resuming never leaves one out.

Usage::

    drgnet screen photos/ more/*.jpg list.csv --checkpoint runs/train/best --out results.csv --masks masks/
    drgnet screen photos/ --out results.csv --db          # the active model version; results into the worklist

Modules: ``inputs`` (collect_inputs), ``loading`` (read_photo_file, prepare_item, ScreeningDataset), ``scoring``
(score_batch, ScreenOptions), ``sinks`` (ScreenSink, load_sink), ``outputs`` (COLUMNS, ResultWriter, read_results),
``run_local`` (screen, EngineSpec), ``run_ray`` (screen_ray, RayScreener).
"""

from __future__ import annotations

from drgnet.screening.inputs import IMAGE_SUFFIXES, collect_inputs
from drgnet.screening.loading import ScreeningDataset, ScreenItem, prepare_item, read_photo_file
from drgnet.screening.outputs import COLUMNS, ResultWriter, read_results
from drgnet.screening.run_local import EngineSpec, ScreenSummary, screen
from drgnet.screening.run_ray import RayScreener, screen_ray
from drgnet.screening.scoring import ScreenOptions, score_batch
from drgnet.screening.sinks import ScreenSink, SinkError, load_sink

__all__ = [
    "COLUMNS",
    "IMAGE_SUFFIXES",
    "EngineSpec",
    "RayScreener",
    "ResultWriter",
    "ScreenItem",
    "ScreenOptions",
    "ScreenSink",
    "SinkError",
    "ScreenSummary",
    "ScreeningDataset",
    "collect_inputs",
    "load_sink",
    "prepare_item",
    "read_photo_file",
    "read_results",
    "score_batch",
    "screen",
    "screen_ray",
]
