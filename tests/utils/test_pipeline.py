"""The two-thread stages that overlap parsing/encoding with sending/writing."""

from __future__ import annotations

import threading
import time

import pytest

from airflow_provider_mlops.utils.pipeline import map_ahead, prefetch


def test_prefetch_yields_everything_in_order_from_another_thread() -> None:
    threads: set[str] = set()

    def produce():
        for i in range(100):
            threads.add(threading.current_thread().name)
            yield i

    assert list(prefetch(produce(), depth=3, name="t-prefetch")) == list(range(100))
    assert threads == {"t-prefetch"}


def test_prefetch_stays_at_most_depth_items_ahead() -> None:
    produced: list[int] = []

    def produce():
        for i in range(50):
            produced.append(i)
            yield i

    stream = prefetch(produce(), depth=2)
    assert next(stream) == 0
    time.sleep(0.3)
    # one handed out, two queued, one blocked in put(): never the whole source
    assert len(produced) <= 4
    stream.close()


def test_prefetch_raises_the_producers_error_after_the_good_items() -> None:
    def produce():
        yield 1
        yield 2
        raise OSError("source broke")

    stream = prefetch(produce())
    assert [next(stream), next(stream)] == [1, 2]
    with pytest.raises(OSError, match="source broke"):
        next(stream)


def test_closing_the_consumer_stops_and_closes_the_producer() -> None:
    closed = threading.Event()

    def produce():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    stream = prefetch(produce(), depth=1)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert closed.wait(5), "the endless source was closed when the consumer stopped"


def test_map_ahead_keeps_order_runs_func_in_a_worker_and_the_source_in_the_caller() -> None:
    caller = threading.current_thread().name
    source_threads: set[str] = set()
    func_threads: set[str] = set()

    def source():
        for i in range(20):
            source_threads.add(threading.current_thread().name)
            yield i

    def square(x: int) -> int:
        func_threads.add(threading.current_thread().name)
        return x * x

    assert list(map_ahead(square, source(), name="t-map")) == [i * i for i in range(20)]
    assert source_threads == {caller}
    assert all(name.startswith("t-map") for name in func_threads)


def test_map_ahead_raises_the_functions_error() -> None:
    def fail_on_three(x: int) -> int:
        if x == 3:
            raise ValueError("bad item 3")
        return x

    stream = map_ahead(fail_on_three, range(10))
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="bad item 3"):
        next(stream)
