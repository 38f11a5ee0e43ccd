"""Keepalive for blocking connections: one shared daemon thread that sends
each connection's pings when they are due (a heap of deadlines: it sleeps
until the next one, so idle connections cost no wake-ups in between)."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import weakref
from typing import Any, List, Optional, Tuple

logger = logging.getLogger("libws")

_lock = threading.Condition()
_heap: List[Tuple[float, int, "weakref.ref[Any]"]] = []
_seq = itertools.count()
_thread: Optional[threading.Thread] = None


def schedule(conn: Any, due: float) -> None:
    """Calls ``conn._keepalive(now)`` at ``due`` (time.monotonic); it returns
    its next due time, or None to stop."""
    global _thread
    with _lock:
        heapq.heappush(_heap, (due, next(_seq), weakref.ref(conn)))
        if _thread is None:
            _thread = threading.Thread(target=_run, name="libws-keepalive", daemon=True)
            _thread.start()
        elif _heap[0][0] == due:
            _lock.notify()


def _run() -> None:
    while True:
        with _lock:
            while not _heap or _heap[0][0] > time.monotonic():
                _lock.wait(None if not _heap else max(0.0, _heap[0][0] - time.monotonic()))
            _, _, ref = heapq.heappop(_heap)
        conn = ref()
        if conn is None:
            continue
        try:
            nxt = conn._keepalive(time.monotonic())
        except Exception:  # a keepalive failure must not end the thread
            logger.exception("keepalive of %r failed", conn)
            nxt = None
        del conn
        if nxt is not None:
            with _lock:
                heapq.heappush(_heap, (nxt, next(_seq), ref))
