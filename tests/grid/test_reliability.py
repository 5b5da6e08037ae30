"""Interrupted runs resume to the same numbers; dead workers are retried; a failing task is named."""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stressgrid.core import TaskError
from stressgrid.grid import RayExecutor, SerialExecutor, execute, load_batch, prepare_inputs, run_chunk
from section_helpers import Interrupt


@pytest.fixture(scope="module")
def inputs(linear_batch_path):
    batch, digest = load_batch(linear_batch_path)
    batch = batch.model_copy(update={"execution": batch.execution.model_copy(update={"chunk_size": 256})})
    return prepare_inputs(batch, digest)


@pytest.fixture(scope="module")
def reference(inputs):
    return execute(inputs, SerialExecutor())


def _same_tables(a, b):
    assert a.tables.keys() == b.tables.keys()
    for k in a.tables:
        if k != "positions":
            pd.testing.assert_frame_equal(a.tables[k], b.tables[k], check_exact=True)


def test_interrupted_run_resumes_to_identical_results(inputs, reference, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        execute(inputs, SerialExecutor(fn=Interrupt(at=4)), run_dir=tmp_path)
    assert len(list((tmp_path / "tasks").glob("task-*.npz"))) == 4
    ran = []
    res = execute(inputs, SerialExecutor(fn=lambda p, t: ran.append(t.task_id) or run_chunk(p, t)), run_dir=tmp_path, resume=True)
    assert ran == list(range(4, len(res.tasks)))  # only the missing tasks ran
    assert res.resumed_tasks == 4
    _same_tables(res, reference)


_KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from stressgrid.grid import SerialExecutor, execute, load_batch, prepare_inputs, run_chunk
    batch, digest = load_batch(sys.argv[1])
    batch = batch.model_copy(update={"execution": batch.execution.model_copy(update={"chunk_size": 256})})
    def slow(payload, task):
        time.sleep(0.3)
        return run_chunk(payload, task)
    execute(prepare_inputs(batch, digest), SerialExecutor(fn=slow), run_dir=sys.argv[2])
""")


@pytest.mark.slow
def test_killed_process_resumes_to_identical_results(inputs, reference, linear_batch_path, tmp_path):
    """SIGKILL a real run mid-way, then resume it in this process."""
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(linear_batch_path), str(tmp_path / "run")],
                            cwd=Path(__file__).resolve().parents[2])
    deadline = time.time() + 120
    tasks = tmp_path / "run" / "tasks"
    while time.time() < deadline and len(list(tasks.glob("task-*.npz"))) < 3:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(tasks.glob("task-*.npz")))
    assert 3 <= done < len(reference.tasks), "the run was not killed mid-way"
    res = execute(inputs, SerialExecutor(), run_dir=tmp_path / "run", resume=True)
    assert res.resumed_tasks == done
    _same_tables(res, reference)


def test_resume_refuses_another_plan(inputs, tmp_path):
    execute(inputs, SerialExecutor(), run_dir=tmp_path)
    other = inputs.batch.model_copy(update={"execution": inputs.batch.execution.model_copy(update={"chunk_size": 128})})
    from dataclasses import replace

    from stressgrid.core import ConfigError

    with pytest.raises(ConfigError, match="different plan"):
        execute(replace(inputs, batch=other), SerialExecutor(), run_dir=tmp_path, resume=True)
    with pytest.raises(ConfigError, match="no interrupted run"):
        execute(inputs, SerialExecutor(), run_dir=tmp_path / "empty", resume=True)


class _Fails:
    def __init__(self, at):
        self.at = at

    def __call__(self, payload, task):
        if task.task_id == self.at:
            raise ValueError("strike of position X is NaN")
        return run_chunk(payload, task)


def test_failing_task_is_named_and_finished_tasks_are_kept(inputs, tmp_path):
    with pytest.raises(TaskError) as exc:
        execute(inputs, SerialExecutor(fn=_Fails(at=2)), run_dir=tmp_path)
    msg = str(exc.value)
    assert "task 2 (scenarios 512..767: hist_10d:" in msg
    assert "ValueError: strike of position X is NaN" in msg
    assert "2 finished task(s) are kept" in msg
    assert len(list((tmp_path / "tasks").glob("task-*.npz"))) == 2


class _CrashOnce:
    """Kills its worker process the first time it sees each of the first two tasks."""

    def __init__(self, marker_dir):
        self.marker_dir = str(marker_dir)

    def __call__(self, payload, task):
        marker = os.path.join(self.marker_dir, f"crashed-{task.task_id}")
        if task.task_id < 2 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker process dies mid-task
        return run_chunk(payload, task)


@pytest.fixture
def by_value(ray_session):
    """Ship this module's worker wrappers to Ray workers by value (the workers cannot import tests/)."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.ray
def test_dead_worker_is_retried_with_identical_results(by_value, inputs, reference, tmp_path):
    res = execute(inputs, RayExecutor(workers=2, fn=_CrashOnce(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crashed-0", "crashed-1"]
    _same_tables(res, reference)


@pytest.mark.ray
def test_failing_ray_task_is_named(by_value, inputs):
    with pytest.raises(TaskError, match=r"task 3 \(scenarios 768..1023.*ValueError: strike of position X is NaN"):
        execute(inputs, RayExecutor(workers=2, fn=_Fails(at=3)))


_CLUSTER_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, ray
    from ray.cluster_utils import Cluster
    from stressgrid.cluster import runtime_env
    from stressgrid.grid import RayExecutor, SerialExecutor, execute, load_batch, prepare_inputs
    batch, digest = load_batch(sys.argv[1])
    batch = batch.model_copy(update={"execution": batch.execution.model_copy(update={"chunk_size": 256})})
    inputs = prepare_inputs(batch, digest)
    from stressgrid.cluster import gpu_request
    from stressgrid.grid._worker import run_chunk
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    gpu_node = c.add_node(num_cpus=1, num_gpus=1)  # a GPU as Ray sees it: a resource on that node
    ray.init(address=c.address, runtime_env=runtime_env())
    c.wait_for_nodes()
    nodes = len([n for n in ray.nodes() if n["Alive"]])
    res = execute(inputs, RayExecutor())
    ref = execute(inputs, SerialExecutor())
    same = all(res.tables[k].equals(ref.tables[k]) for k in res.tables if k != "positions")

    def on_node(payload, task):
        r = run_chunk(payload, task)
        r.node = ray.get_runtime_context().get_node_id()
        return r

    gpus = gpu_request("auto", 0.5)
    g = execute(inputs, RayExecutor(num_gpus=gpus, fn=on_node))
    same_gpu = all(g.tables[k].equals(ref.tables[k]) for k in g.tables if k != "positions")
    on_gpu = sorted({r.node == gpu_node.node_id for r in g.results})
    # a streamed run (tasks draw a Monte Carlo family and write their parts) on the three nodes
    import pandas as pd
    from pathlib import Path
    from stressgrid.grid import write_outputs
    import yaml
    raw = yaml.safe_load(Path(sys.argv[1]).read_text())
    raw["book"] = str(Path(sys.argv[1]).parent / raw["book"])
    raw["scenarios"].append({"kind": "montecarlo", "name": "mc", "model": "student_t", "n_scenarios": 3000,
                             "window": {"end": "2017-03-29", "lookback_days": 500}})
    raw["execution"] = {"chunk_size": 512, "stream": True}
    (Path(sys.argv[2]) / "streamed.yaml").write_text(yaml.safe_dump(raw))
    sb, sdigest = load_batch(Path(sys.argv[2]) / "streamed.yaml")
    outs = {}
    for name, ex in (("ray", RayExecutor()), ("serial", SerialExecutor())):
        d = Path(sys.argv[2]) / name
        write_outputs(execute(prepare_inputs(sb, sdigest, out=d), ex, run_dir=d), d)
        outs[name] = d
    def read(d, t):
        f = d / t
        return pd.concat([pd.read_parquet(p) for p in sorted(f.glob("*.parquet"))]) if f.is_dir() else pd.read_parquet(d / f"{t}.parquet")
    tables = ["risk_metrics", "contributions", "coverage_families", "scenarios", "breakdown", "sensitivity"]
    same_streamed = all(read(outs["ray"], t).equals(read(outs["serial"], t)) for t in tables)
    parts = len(list((outs["ray"] / "scenarios").glob("*.parquet")))
    print(json.dumps({"nodes": nodes, "same": bool(same and np.array_equal(res.pnl, ref.pnl)), "tasks": len(res.tasks),
                      "gpus_per_task": gpus, "gpu_tasks_on_gpu_node": on_gpu, "same_gpu": bool(same_gpu),
                      "same_streamed": bool(same_streamed), "streamed_parts": parts}))
    ray.shutdown(); c.shutdown()
""")


@pytest.mark.slow
def test_three_node_cluster_equals_single_node(linear_batch_path, tmp_path):
    script = tmp_path / "cluster_run.py"
    script.write_text(_CLUSTER_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, str(script), str(linear_batch_path), str(tmp_path)], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[2], env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["nodes"] == 3 and out["same"] is True and out["tasks"] > 3
    # execution.gpu: auto on a cluster with a GPU node: every kernel task asked for the GPU share and ran
    # on that node, with the same numbers
    assert out["gpus_per_task"] == 0.5 and out["gpu_tasks_on_gpu_node"] == [True] and out["same_gpu"] is True
    # a streamed run on the three nodes writes the serial run's tables, bit for bit
    assert out["same_streamed"] is True and out["streamed_parts"] > 3
