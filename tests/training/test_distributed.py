"""Data-parallel training: disjoint shards per rank, DDP keeps replicas equal, rank 0 alone writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter

import pytest
import torch
from torch.utils.data import RandomSampler, WeightedRandomSampler

from drgnet.data import synthetic
from drgnet.training.distributed import TRACE_ENV, ShardedSampler


def test_sharded_sampler_splits_one_draw_into_disjoint_equal_shares():
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.double)

    def draw(seed):
        return WeightedRandomSampler(weights, 11, generator=torch.Generator().manual_seed(seed))

    drawn = list(draw(5))
    shards = [list(ShardedSampler(draw(5), rank, 3)) for rank in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # the tail of 2 is dropped: every rank takes the same steps
    assert shards == [drawn[r:9:3] for r in range(3)]
    assert Counter(sum(shards, [])) == Counter(drawn[:9])
    # One rank: exactly the underlying sampler, so single-process runs are unchanged.
    assert list(ShardedSampler(draw(5), 0, 1)) == drawn
    perm = [
        list(ShardedSampler(RandomSampler(range(10), generator=torch.Generator().manual_seed(1)), r, 2)) for r in (0, 1)
    ]
    assert not set(perm[0]) & set(perm[1]) and sorted(perm[0] + perm[1]) == list(range(10))
    with pytest.raises(ValueError, match="rank 2 outside world of 2"):
        ShardedSampler(draw(0), 2, 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_train_disjoint_data_and_only_rank0_writes(tmp_path):
    cohort = tmp_path / "cohort"
    synthetic.generate_cohort(cohort, n=16, size=128, workers=1, progress=False)
    out, trace = tmp_path / "run", tmp_path / "trace"
    env = {**os.environ, TRACE_ENV: str(trace), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
        "-m", "drgnet.cli", "train", "--preset", "tiny", "--data", str(cohort), "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("best checkpoint:") == 1  # rank 0 reports, rank 1 is quiet

    rank0, rank1 = _events(trace / "rank0.jsonl"), _events(trace / "rank1.jsonl")
    assert {e["world_size"] for e in rank0 + rank1} == {2}
    epochs0 = [e for e in rank0 if e["event"] == "epoch_indices"]
    epochs1 = [e for e in rank1 if e["event"] == "epoch_indices"]
    assert [e["epoch"] for e in epochs0] == [e["epoch"] for e in epochs1] == [0, 1]
    for e0, e1 in zip(epochs0, epochs1, strict=True):
        drawn = e0["drawn"]
        assert e1["drawn"] == drawn  # the same seeded draw on both ranks...
        assert e0["mine"] == drawn[0::2] and e1["mine"] == drawn[1::2]  # ...split into disjoint positions
        assert len(e0["mine"]) == len(e1["mine"]) and Counter(e0["mine"] + e1["mine"]) == Counter(drawn)
    # 11 training photographs, batch 4 per rank, 2 ranks: 2 steps of 4 each per rank, 16 samples drawn.
    assert len(epochs0[0]["drawn"]) == 16

    # DDP averaged the gradients: both replicas end with the same weights.
    (done0,) = [e for e in rank0 if e["event"] == "fit_done"]
    (done1,) = [e for e in rank1 if e["event"] == "fit_done"]
    assert done0["checksum"] == pytest.approx(done1["checksum"], rel=1e-9, abs=1e-9)

    # Only rank 0 wrote checkpoints; nothing else appeared in the run folder.
    assert [e for e in rank1 if e["event"] == "checkpoint"] == []
    assert {e["path"] for e in rank0 if e["event"] == "checkpoint"} == {str(out / "best"), str(out / "last")}
    assert sorted(p.name for p in out.iterdir()) == ["best", "history.json", "last", "test_metrics.json"]
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1] and "qwk" in history[0]["val"]
