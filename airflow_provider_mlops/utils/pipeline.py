"""
Overlap the stages of a batch stream on two threads, with a bounded number of batches in flight.

Arrow, libpq and the Parquet writer release the GIL while they work, so a stage that parses or
encodes batches runs beside one that sends or writes them. Memory stays bounded: at most
``depth`` batches wait between the stages.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(iterable: Iterable[T], depth: int = 2, *, name: str = "mlops-prefetch") -> Iterator[T]:
    """
    Yield the items of ``iterable``, produced ahead in a background thread.

    The producer runs at most ``depth`` items ahead of the consumer. An error in the producer is
    raised in the consumer, at the point the failed item would have been yielded. When the consumer
    stops early (``close()``, an exception, garbage collection), the producer stops at its next
    item and ``iterable`` is closed in its own thread.

    Use it only for iterables that need nothing thread-bound (an Airflow task context, a
    connection created in the consumer's thread): e.g. a cursor opened by the producer itself.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(iterable)
        try:
            for item in iterator:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as err:  # handed over to the consumer
            put(_Failure(err))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                # Closing a source that already failed may fail again: the first error is the one that counts.
                with contextlib.suppress(Exception):
                    close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def map_ahead(func: Callable[[T], R], iterable: Iterable[T], *, name: str = "mlops-map") -> Iterator[R]:
    """
    Yield ``func(item)`` for each item, computing the next result in a worker thread meanwhile.

    ``iterable`` itself is consumed in the caller's thread (so a caller's generator keeps its
    thread-bound state); only ``func`` runs in the worker, one item ahead of the consumer.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        pending: Future[R] | None = None
        try:
            for item in iterable:
                future = pool.submit(func, item)
                if pending is not None:
                    yield pending.result()
                pending = future
            if pending is not None:
                result, pending = pending.result(), None
                yield result
        finally:
            if pending is not None:
                pending.cancel()
