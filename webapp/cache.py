"""A least-recently-used cache bounded in bytes, shared by every session of the app (thread-safe).

Streamlit's own caches count entries, and one entry may be a 40 KB thumbnail or a 200 MB set of full-size maps; a
byte bound keeps the app's memory predictable whatever photographs it serves.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def size_of(value: Any) -> int:
    """Bytes a cached value holds: numpy arrays and anything with ``nbytes``, summed through tuples and lists."""
    if value is None:
        return 0
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if isinstance(value, tuple | list):
        return sum(size_of(v) for v in value)
    if isinstance(value, bytes | bytearray):
        return len(value)
    return 64  # small Python objects: counted, so a cache of many of them still ends


def _freeze(value: Any) -> None:
    # Shared between sessions: an accidental in-place edit must fail instead of changing another clinician's view.
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, tuple | list):
        for v in value:
            _freeze(v)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            _freeze(getattr(value, name))


class ByteLRU:
    """Keeps the most recently used values while their total size stays within ``max_bytes``.

    A value larger than the whole budget is returned but not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: Any) -> None:
        size = size_of(value)
        _freeze(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def get_or_make(self, key: Hashable, make: Callable[[], T]) -> T:
        """The cached value, or ``make()``'s (made once even when several sessions ask at the same time)."""
        value = self.get(key)
        if value is not None:
            return value
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            value = self.get(key)
            if value is None:
                value = make()
                self.put(key, value)
        with self._lock:
            self._key_locks.pop(key, None)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
