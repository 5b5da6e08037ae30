"""How the Ray executor places work: a plan of one task runs in the driver, more are queued on Ray;
either way the numbers are those of the serial executor, bit for bit."""

import os
import sys
from dataclasses import replace

import pandas as pd
import pytest

from stressgrid.grid import RayExecutor, SerialExecutor, execute, load_batch, prepare_inputs, run_chunk, write_outputs


@pytest.fixture(scope="module", autouse=True)
def _ship_this_module():
    """The worker function below travels to the Ray workers by value (they cannot import test modules)."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def one_task(demo_batch_path):
    batch, digest = load_batch(demo_batch_path)
    batch = batch.model_copy(update={"liquidity": None, "optimise": None, "factor_model": None, "monitoring": None,
                                     "execution": batch.execution.model_copy(update={"chunk_size": None})})
    return prepare_inputs(batch, digest)


def _where(payload, task):
    r = run_chunk(payload, task)
    r.compile_seconds = float(os.getpid())  # which process ran it
    return r


@pytest.mark.ray
def test_a_single_task_runs_in_the_driver_and_matches_serial(ray_session, one_task, tmp_path):
    ref = execute(one_task, SerialExecutor())
    assert len(ref.tasks) == 1  # the demo-sized batch is below the lower bound of a task
    inline = execute(one_task, RayExecutor(fn=_where))
    remote = execute(one_task, RayExecutor(fn=_where, inline_single=False))
    assert inline.results[0].compile_seconds == os.getpid() and inline.tasks_in_driver == 1
    assert remote.results[0].compile_seconds != os.getpid() and remote.tasks_in_driver == 0
    for res in (inline, remote):
        for name, table in ref.tables.items():
            pd.testing.assert_frame_equal(res.tables[name], table, check_exact=True)
    assert write_outputs(inline, tmp_path / "run")["counts"]["tasks_in_driver"] == 1


@pytest.mark.ray
def test_many_tasks_are_queued_beyond_the_cpus_and_all_run_on_workers(ray_session, one_task):
    b = one_task.batch
    small = replace(one_task, batch=b.model_copy(update={"execution": b.execution.model_copy(update={"chunk_size": 256})}))
    ex = RayExecutor(fn=_where)
    res = execute(small, ex)
    assert len(res.tasks) > 20 and res.tasks_in_driver == 0
    assert all(r.compile_seconds != os.getpid() for r in res.results)
    assert ex.concurrency == 2  # the session's local instance has two CPUs
    ref = execute(small, SerialExecutor())
    pd.testing.assert_frame_equal(res.tables["risk_metrics"], ref.tables["risk_metrics"], check_exact=True)
