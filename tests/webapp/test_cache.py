"""The byte-bounded LRU cache the review pages share."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from webapp.cache import ByteLRU


def test_evicts_least_recently_used_by_bytes_not_entries():
    cache = ByteLRU(max_bytes=3000)
    a, b, c = (np.zeros(1000, np.uint8) for _ in range(3))
    cache.put("a", a)
    cache.put("b", b)
    cache.put("c", c)
    assert cache.nbytes == 3000 and len(cache) == 3
    assert cache.get("a") is a  # a is now the most recently used
    cache.put("d", np.zeros(1500, np.uint8))  # 4500 bytes: b and c go, a stays
    assert "b" not in cache and "c" not in cache and "a" in cache and "d" in cache
    assert cache.nbytes == 2500


def test_too_large_value_is_returned_but_not_kept_and_values_are_read_only():
    cache = ByteLRU(max_bytes=100)
    big = cache.get_or_make("big", lambda: np.zeros(1000, np.uint8))
    assert big.shape == (1000,) and "big" not in cache and cache.nbytes == 0
    small = cache.get_or_make("small", lambda: (np.ones(10, np.uint8), np.ones(5, np.float32)))
    assert cache.nbytes == 30
    with pytest.raises(ValueError):
        small[0][0] = 3  # shared between sessions: no accidental in-place edits


def test_get_or_make_makes_once_under_concurrency():
    cache = ByteLRU(max_bytes=10_000)
    calls = []
    gate = threading.Event()

    def make():
        calls.append(1)
        gate.wait(5)
        return np.zeros(100, np.uint8)

    threads = [threading.Thread(target=cache.get_or_make, args=("k", make)) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(5)
    assert len(calls) == 1 and cache.nbytes == 100


def test_negative_budget_is_refused():
    with pytest.raises(ValueError, match="max_bytes"):
        ByteLRU(-1)
