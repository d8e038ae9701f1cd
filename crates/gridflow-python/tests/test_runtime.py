"""Computing from Python: progress callbacks, the GIL released while gridflow works."""

import threading
import time

import numpy as np
import pytest

import gridflow

from conftest import DATASET_FIXTURES

STORE = str(DATASET_FIXTURES / "daily_360.zarr")


def _heavy(ds):
    # enough tasks and arithmetic to take a noticeable time in a debug build
    x = ds.tas
    for _ in range(6):
        x = np.sqrt(x * x + 1.0).rolling(time=3).mean()
    return x.groupby("time.month").std()


def test_progress_callback_counts_the_tasks():
    ds = gridflow.open_zarr(STORE)
    calls = []
    ds.tas.groupby("time.month").mean().compute(progress=lambda done, total: calls.append((done, total)))
    assert calls
    totals = {t for _, t in calls}
    assert len(totals) == 1 and totals.pop() > 1
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and dones[-1] == calls[-1][1]


# the callback's error is reported as unraisable (printed), not raised
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_progress_errors_do_not_stop_the_computation():
    ds = gridflow.open_zarr(STORE)

    def bad(done, total):
        raise RuntimeError("a broken progress bar")

    want = ds.tas.mean("time").compute(progress=False)
    got = ds.tas.mean("time").compute(progress=bad)
    np.testing.assert_array_equal(got.values, want.values)


def test_the_gil_is_released_while_computing():
    ds = gridflow.open_zarr(STORE)
    lazy = _heavy(ds)
    stop = threading.Event()
    ticks = [0]

    def count():
        while not stop.is_set():
            ticks[0] += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        time.sleep(0.05)
        start_ticks, start = ticks[0], time.perf_counter()
        lazy.compute()
        during, elapsed = ticks[0] - start_ticks, time.perf_counter() - start
    finally:
        stop.set()
        t.join()
    # With the GIL held for the whole call the counting thread could not run at all; with
    # it released it counts on, thousands of times even on a busy machine.
    assert elapsed > 0.01
    assert during > 1000, (during, elapsed)
