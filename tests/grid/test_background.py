"""grid._background.Background: a function on a thread of its own, its value or its error handed back."""

import threading

import pytest

from stressgrid.grid._background import Background


def test_the_value_comes_back_and_after_runs_once_it_is_in():
    gate = threading.Event()
    seen = []
    job = Background(lambda: (gate.wait(), 42)[1], "test-background", after=lambda: seen.append(job.done()))
    assert not job.done()
    gate.set()
    assert job.result() == 42 and job.result() == 42
    assert job.done() and not job.failed()
    assert seen == [True]  # after() saw the result in
    assert job.seconds >= 0.0


def test_the_error_is_raised_in_the_callers_thread():
    def broken():
        raise ValueError("bad value 7")

    seen = []
    job = Background(broken, "test-background", after=lambda: seen.append(threading.current_thread().name))
    with pytest.raises(ValueError, match="bad value 7"):
        job.result()
    assert job.failed()
    assert seen == ["test-background"]  # on the job's own thread
