"""Racing calls: released at the same instant, each in its own thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

THREAD_TIMEOUT = 60.0


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released at the same instant; return results in order.

    An exception in a call is returned (not raised) so the test can say what went wrong.
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def worker(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=THREAD_TIMEOUT)
            results[i] = call()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i, c), daemon=True) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(THREAD_TIMEOUT)
    stuck = [i for i, t in enumerate(threads) if t.is_alive()]
    assert not stuck, f"{len(stuck)} racing call(s) still running after {THREAD_TIMEOUT:g}s (deadlock?)"
    return results
