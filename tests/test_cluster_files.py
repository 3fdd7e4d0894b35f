"""cluster/: every manifest parses, and every instructmix command line in it is one the CLI accepts."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
import yaml

from jobs.cli import build_parser
from jobs.config import ResourcesConfig, load_config
from tests.conftest import REPO

CLUSTER = REPO / "cluster"


def _yaml(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text(encoding="utf-8"))


def test_every_manifest_parses_and_is_documented():
    readme = (CLUSTER / "README.md").read_text(encoding="utf-8")
    for path in sorted(CLUSTER.iterdir()):
        if path.suffix == ".yaml":
            assert list(yaml.safe_load_all(path.read_text(encoding="utf-8"))), path.name
        if path.name != "README.md":
            assert path.name in readme, f"{path.name} is not described in cluster/README.md"


def test_the_resources_example_validates():
    resources = load_config(CLUSTER / "resources.yaml", ResourcesConfig)
    assert resources.spark.executor_memory and resources.ray.entrypoint_num_gpus == 0


def test_the_spark_application_runs_a_command_the_cli_accepts():
    app = _yaml("spark-application.yaml")
    assert app["kind"] == "SparkApplication" and app["spec"]["mainApplicationFile"].endswith("jobs/cli.py")
    args = build_parser().parse_args(app["spec"]["arguments"])
    assert args.func.__name__ == "_mine" and args.input and args.output


def test_the_ray_job_and_the_slurm_script_run_commands_the_cli_accepts():
    job = _yaml("kuberay-rayjob.yaml")
    entry = shlex.split(job["spec"]["entrypoint"])
    assert entry[0] == "instructmix"
    args = build_parser().parse_args(entry[1:])
    assert args.func.__name__ == "_synth" and args.mode == "template"
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"].endswith("instructmix-gpu:0.1.0")
    cluster = _yaml("kuberay-raycluster.yaml")
    gpu = cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1"
    launcher = _yaml("ray-cluster.yaml")
    assert set(launcher["available_node_types"]) == {"head", "gpu_workers"}
    assert all("--dashboard-host=127.0.0.1" in c for c in launcher["head_start_ray_commands"] if "--head" in c)


def test_the_slurm_script_is_valid_bash():
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    proc = subprocess.run(["bash", "-n", str(CLUSTER / "slurm-synth.sbatch")], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def test_the_images_copy_what_exists():
    for name in ("Dockerfile.cpu", "Dockerfile.gpu"):
        for line in (CLUSTER / name).read_text(encoding="utf-8").splitlines():
            if line.startswith("COPY ") and "--from" not in line:
                for source in line.split()[1:-1]:
                    assert (REPO / source).exists(), f"{name}: {source}"
