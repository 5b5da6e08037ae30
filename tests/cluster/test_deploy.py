"""The deployment files in cluster/deploy: the launcher YAML against Ray's own schema, the KubeRay
manifests for what stressgrid relies on (image, float64, entrypoint, head without kernel tasks)."""

import json
import shlex
from importlib import metadata
from pathlib import Path

import jsonschema
import yaml

import ray

DEPLOY = Path(__file__).resolve().parents[2] / "cluster" / "deploy"


def _load(name):
    return yaml.safe_load((DEPLOY / name).read_text())


def test_launcher_yaml_is_valid_for_ray():
    cfg = _load("ray-cluster-aws.yaml")
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(cfg, schema)
    assert cfg["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert any("pip install" in c and "stressgrid" in c for c in cfg["setup_commands"])
    assert cfg["max_workers"] == 100


def _containers(spec):
    yield from spec["headGroupSpec"]["template"]["spec"]["containers"]
    for g in spec["workerGroupSpecs"]:
        yield from g["template"]["spec"]["containers"]


def test_kuberay_raycluster():
    m = _load("kuberay-raycluster.yaml")
    assert m["apiVersion"] == "ray.io/v1" and m["kind"] == "RayCluster"
    spec = m["spec"]
    major_minor = ".".join(metadata.version("ray").split(".")[:2])
    assert spec["rayVersion"].startswith(major_minor)
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    for c in _containers(spec):
        assert {"name": "JAX_ENABLE_X64", "value": "1"} in c["env"]
        assert "stressgrid" in c["image"]
        # every pod reaches the object storage a streamed run's workers write to
        assert {"secretRef": {"name": "stressgrid-s3", "optional": True}} in c["envFrom"]
    gpu = next(g for g in spec["workerGroupSpecs"] if g["groupName"] == "gpu")
    assert gpu["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_kuberay_rayjob_runs_the_cli():
    m = _load("kuberay-rayjob.yaml")
    assert m["apiVersion"] == "ray.io/v1" and m["kind"] == "RayJob"
    args = shlex.split(m["spec"]["entrypoint"])
    assert args[:4] == ["python", "-m", "stressgrid.cli", "run"] and "--out" in args
    # the workers write the part files of a streamed run: to object storage, whose credentials every pod has
    from stressgrid.core.storage import is_uri

    assert is_uri(args[args.index("--out") + 1])
    spec = m["spec"]["rayClusterSpec"]
    for c in _containers(spec):
        assert {"secretRef": {"name": "stressgrid-s3"}} in c["envFrom"]
    renv = yaml.safe_load(m["spec"]["runtimeEnvYAML"])
    env = renv["env_vars"]
    assert env["JAX_ENABLE_X64"] == "1"
    # the workers set themselves up as the embedded instance's do
    from stressgrid.cluster import runtime_env

    assert renv["worker_process_setup_hook"] == runtime_env()["worker_process_setup_hook"]
    assert env["STRESSGRID_ONE_CORE"] == runtime_env()["env_vars"]["STRESSGRID_ONE_CORE"]
    # the entrypoint parses with the real command line
    from click.testing import CliRunner
    from stressgrid import cli

    res = CliRunner().invoke(cli.main, args[3:4] + ["--help"])
    assert res.exit_code == 0 and "--out" in res.output


def test_the_gpu_extra_and_the_gpu_worker_group():
    """``pip install "stressgrid[gpu]"`` brings JAX's CUDA wheels; the KubeRay manifest's GPU group asks
    for a GPU per worker, keeps float64, and scales from zero."""
    import tomllib

    project = tomllib.loads((DEPLOY.parents[1] / "pyproject.toml").read_text())["project"]
    gpu = project["optional-dependencies"]["gpu"]
    assert any(r.replace(" ", "").startswith("jax[cuda12]") for r in gpu)
    text = (DEPLOY / "kuberay-raycluster.yaml").read_text()
    assert 'stressgrid[gpu]' in text
    [group] = [g for g in _load("kuberay-raycluster.yaml")["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu"]
    assert group["minReplicas"] == 0
    [c] = group["template"]["spec"]["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"name": "JAX_ENABLE_X64", "value": "1"} in c["env"]
