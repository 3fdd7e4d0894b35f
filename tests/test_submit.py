"""`instructmix submit` against real clusters started on 127.0.0.1: a Spark standalone
master and worker, and a Ray head with its Jobs API. Each test stops exactly the
processes it started (tests/clusters.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import psutil
import pyarrow.parquet as pq
import pytest

from jobs.config import ConfigError, ResourcesConfig, validate_config
from jobs.submit import absolute_paths, check_stage_target, ray_job_spec, spark_submit_command
from tests.clusters import ray_head, spark_standalone
from tests.conftest import REPO, SAMPLES

pytestmark = pytest.mark.spark
SECRET = "s3cr3t-never-logged-7f2a"


def _submit(*args: str, env_extra: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "jobs.cli", "submit", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _last_json(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _all_gone(processes: list[psutil.Process]) -> bool:
    return not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


# --------------------------------------------------------------------------- commands


def test_spark_submit_is_an_argument_list_with_the_packages_and_resources(tmp_path):
    resources = validate_config({"spark": {"executor_memory": "8g", "executor_cores": 4, "num_executors": 3,
                                           "conf": {"spark.a": "b; rm -rf /"}}}, ResourcesConfig, "r.yaml")
    cmd = spark_submit_command("spark://h:7077", "mine", ["--input", "/x/*.warc.gz", "--output", "/y"],
                               resources, "/tmp/pkg.zip")
    assert cmd[:3] == ["spark-submit", "--master", "spark://h:7077"]
    assert cmd[cmd.index("--py-files") + 1] == "/tmp/pkg.zip"
    assert cmd[cmd.index("--executor-memory") + 1] == "8g"
    assert "spark.executor.instances=3" in cmd and "spark.a=b; rm -rf /" in cmd  # one argument, never a shell
    assert cmd[-5:] == ["mine", "--input", "/x/*.warc.gz", "--output", "/y"]
    assert cmd[-6].endswith("jobs/cli.py")


def test_local_paths_become_absolute_and_urls_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got = absolute_paths(["--input", "data/*.warc.gz", "s3://b/k", "--output=out", "--config", "c.yaml", "--mode", "x"])
    assert got == ["--input", f"{tmp_path}/data/*.warc.gz", "s3://b/k", f"--output={tmp_path}/out",
                   "--config", f"{tmp_path}/c.yaml", "--mode", "x"]


def test_a_stage_on_the_wrong_kind_of_cluster_is_an_error():
    with pytest.raises(ConfigError, match="runs on Ray"):
        check_stage_target("synth", "spark://h:7077")
    with pytest.raises(ConfigError, match="runs on Spark"):
        check_stage_target("mine", "http://h:8265")
    with pytest.raises(ConfigError, match="expected spark://"):
        check_stage_target("mine", "h:7077")


def test_ray_jobs_forward_named_variables_only(monkeypatch, tmp_path):
    monkeypatch.setenv("INSTRUCTMIX_TEST_SECRET", SECRET)
    monkeypatch.setenv("OTHER_SECRET", "not-forwarded")
    resources = validate_config({"ray": {"forward_env": ["INSTRUCTMIX_TEST_SECRET"], "entrypoint_num_gpus": 1}},
                                ResourcesConfig, "r.yaml")
    spec = ray_job_spec("synth", ["--mode", "template", "--output", "/o"], resources, str(tmp_path))
    assert spec["runtime_env"]["env_vars"] == {"INSTRUCTMIX_TEST_SECRET": SECRET}
    assert spec["entrypoint"] == "python -m jobs.cli synth --mode template --output /o"
    assert spec["entrypoint_num_gpus"] == 1


# --------------------------------------------------------------------------- Spark standalone


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("spark-cluster")
    with spark_standalone(logs) as cluster:
        yield cluster
    assert _all_gone(cluster["processes"])


def test_mine_submitted_to_spark_standalone_matches_a_local_run(spark_cluster, tmp_path, spark):
    from jobs.mine import run_mine

    jobs_dir = tmp_path / "jobs"
    out = tmp_path / "mined"
    proc = _submit("--target", spark_cluster["master"], "mine", "--input", str(SAMPLES / "web-*"),
                   "--output", str(out), env_extra={"INSTRUCTMIX_JOBS_DIR": str(jobs_dir),
                                                    "INSTRUCTMIX_TEST_SECRET": SECRET})
    assert proc.returncode == 0, proc.stderr[-4000:]
    answer = _last_json(proc)
    assert answer["status"] == "SUCCEEDED" and answer["job_id"].startswith("spark-")
    stats = json.loads((out / "_stats.json").read_text())
    assert stats["counters"]["mine.documents.read"] == 26
    # The application really ran on the standalone cluster, not in local mode.
    with urllib.request.urlopen(f"{spark_cluster['ui']}/json/") as response:
        apps = json.load(response)
    assert any(a["name"] == "instructmix-mine" for a in apps.get("completedapps", []) + apps.get("activeapps", []))
    local = tmp_path / "local"
    run_mine([str(SAMPLES / "web-*")], str(local), spark=spark)
    assert sorted(pq.read_table(out).column("id").to_pylist()) == sorted(pq.read_table(local).column("id").to_pylist())
    assert SECRET not in proc.stdout + proc.stderr
    record = (jobs_dir / answer["job_id"] / "job.json").read_text()
    assert SECRET not in record and json.loads(record)["returncode"] == 0
    logs = _submit("--target", spark_cluster["master"], "logs", answer["job_id"],
                   env_extra={"INSTRUCTMIX_JOBS_DIR": str(jobs_dir)})
    assert logs.returncode == 0 and "mine: wrote" in logs.stdout


def test_mix_submitted_to_spark_standalone_meets_the_ratio(spark_cluster, tmp_path):
    import yaml

    config = tmp_path / "mix.yaml"
    config.write_text(yaml.safe_dump({
        "seed": 7, "ratio": 0.05, "tokenizer": str(SAMPLES / "tokenizer.json"),
        "pretrain": [{"path": str(SAMPLES / "pretrain" / "*.jsonl.zst")}],
        "instructions": [{"path": str(SAMPLES / "alpaca-sample.json"), "weight": 1.0}],
        "max_repeat": 2,
        "output": {"path": str(tmp_path / "mixed"), "formats": ["jsonl.zst", "megatron"], "shard_tokens": 4000},
    }), encoding="utf-8")
    proc = _submit("--target", spark_cluster["master"], "mix", "--config", str(config),
                   env_extra={"INSTRUCTMIX_JOBS_DIR": str(tmp_path / "jobs")})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert _last_json(proc)["status"] == "SUCCEEDED"
    manifest = json.loads((tmp_path / "mixed" / "manifest.json").read_text())
    assert abs(manifest["realized_ratio"] - 0.05) <= 0.005
    assert len(list((tmp_path / "mixed" / "megatron").glob("part-*.bin"))) == len(manifest["shards"]) > 0


def test_a_failing_spark_job_exits_non_zero(spark_cluster, tmp_path):
    proc = _submit("--target", spark_cluster["master"], "mine", "--input", str(tmp_path / "nothing-*.warc.gz"),
                   "--output", str(tmp_path / "out"), env_extra={"INSTRUCTMIX_JOBS_DIR": str(tmp_path / "jobs")})
    assert proc.returncode != 0
    assert _last_json(proc)["status"] == "FAILED"
    assert "no file matched" in proc.stderr


def test_a_detached_spark_job_can_be_asked_about_and_stopped(spark_cluster, tmp_path):
    env = {"INSTRUCTMIX_JOBS_DIR": str(tmp_path / "jobs")}
    proc = _submit("--target", spark_cluster["master"], "--detach", "mine", "--input", str(SAMPLES / "web-*"),
                   "--output", str(tmp_path / "out"), env_extra=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job_id = _last_json(proc)["job_id"]
    status = _submit("--target", spark_cluster["master"], "status", job_id, env_extra=env)
    assert status.stdout.strip() == "RUNNING"
    stopped = _submit("--target", spark_cluster["master"], "stop", job_id, env_extra=env)
    assert stopped.stdout.strip() == "STOPPED"
    record = json.loads((tmp_path / "jobs" / job_id / "job.json").read_text())
    deadline = time.time() + 60
    while time.time() < deadline and psutil.pid_exists(record["pid"]):
        try:
            if psutil.Process(record["pid"]).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.5)
    assert _submit("--target", spark_cluster["master"], "status", job_id, env_extra=env).stdout.strip() == "STOPPED"


# --------------------------------------------------------------------------- Ray head


@pytest.fixture(scope="module")
def ray_cluster():
    with ray_head() as head:
        yield head
    assert _all_gone(head["processes"])


def test_synth_submitted_to_the_ray_jobs_api_writes_its_output(ray_cluster, sample_documents, tmp_path):
    resources = tmp_path / "resources.yaml"
    resources.write_text("ray: {forward_env: [INSTRUCTMIX_TEST_SECRET]}\n", encoding="utf-8")
    out = tmp_path / "synth"
    proc = _submit("--target", ray_cluster["address"], "--resources", str(resources), "synth",
                   "--mode", "template_only", "--input", str(sample_documents), "--output", str(out),
                   env_extra={"INSTRUCTMIX_TEST_SECRET": SECRET, **ray_cluster["env"]})
    assert proc.returncode == 0, proc.stderr[-4000:]
    answer = _last_json(proc)
    assert answer["status"] == "SUCCEEDED"
    assert SECRET not in proc.stdout + proc.stderr
    rows = pq.read_table(out / "part-00000.parquet").to_pylist()
    assert rows and {r["mode"] for r in rows} == {"template_only"}
    status = _submit("--target", ray_cluster["address"], "status", answer["job_id"], env_extra=ray_cluster["env"])
    assert status.stdout.strip() == "SUCCEEDED"
    logs = _submit("--target", ray_cluster["address"], "logs", answer["job_id"], env_extra=ray_cluster["env"])
    assert "synth template_only" in logs.stdout


def test_a_failing_ray_job_exits_non_zero_and_a_detached_one_returns_at_once(ray_cluster, tmp_path):
    proc = _submit("--target", ray_cluster["address"], "synth", "--mode", "template_only",
                   "--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "out"),
                   env_extra=ray_cluster["env"])
    assert proc.returncode != 0 and _last_json(proc)["status"] == "FAILED"
    detached = _submit("--target", ray_cluster["address"], "--detach", "synth", "--mode", "template_only",
                       "--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "out2"),
                       env_extra=ray_cluster["env"])
    assert detached.returncode == 0 and _last_json(detached)["status"] == "SUBMITTED"
    job_id = _last_json(detached)["job_id"]
    deadline = time.time() + 180
    status = ""
    while time.time() < deadline:
        status = _submit("--target", ray_cluster["address"], "status", job_id, env_extra=ray_cluster["env"]).stdout.strip()
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(1)
    assert status == "FAILED"


def test_credential_confs_are_redacted_where_the_command_is_shown():
    from jobs.submit import redacted

    cmd = ["spark-submit", "--conf", "spark.hadoop.fs.s3a.secret.key=AbC", "--conf",
           "spark.hadoop.fs.s3a.access.key=AKIA", "--conf", "spark.executor.memory=8g", "--input=/data"]
    assert redacted(cmd) == ["spark-submit", "--conf", "spark.hadoop.fs.s3a.secret.key=***", "--conf",
                             "spark.hadoop.fs.s3a.access.key=***", "--conf", "spark.executor.memory=8g", "--input=/data"]


def test_a_detached_ray_job_can_be_stopped(ray_cluster, sample_documents, tmp_path):
    env = ray_cluster["env"]
    detached = _submit("--target", ray_cluster["address"], "--detach", "synth", "--mode", "template_only",
                       "--input", str(sample_documents), "--output", str(tmp_path / "out"), env_extra=env)
    assert detached.returncode == 0, detached.stderr[-3000:]
    job_id = _last_json(detached)["job_id"]
    assert _submit("--target", ray_cluster["address"], "stop", job_id, env_extra=env).returncode == 0
    deadline = time.time() + 120
    status = ""
    while time.time() < deadline:
        status = _submit("--target", ray_cluster["address"], "status", job_id, env_extra=env).stdout.strip()
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(1)
    assert status == "STOPPED"
    assert not (tmp_path / "out" / "part-00000.parquet").exists()


# --------------------------------------------------------------------------- a head started the usual way

AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def _plain_env(**extra: str) -> dict:
    """This environment without any RAY_AUTH_* variable: what a user's shell usually has."""
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARIABLES}
    return env | extra


def _submit_plain(env: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.cli", "submit", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def usual_ray_head(tmp_path_factory):
    """A machine where an embedded run already happened (it left ~/.ray/auth_token; HOME
    is a private folder so the user's own stays untouched), then a head started with plain
    `ray start --head --dashboard-host 127.0.0.1`: no RAY_AUTH_* variables anywhere."""
    home = tmp_path_factory.mktemp("home")
    embedded = subprocess.run(
        [sys.executable, "-c", "import ray\nfrom jobs.engines.ray import init_ray\ninit_ray(num_cpus=1)\nray.shutdown()"],
        cwd=REPO, env=_plain_env(HOME=str(home), RAY_USAGE_STATS_ENABLED="0"), capture_output=True, text=True,
        timeout=240, check=False)
    assert embedded.returncode == 0, embedded.stderr[-3000:]
    assert (home / ".ray" / "auth_token").is_file()
    with ray_head(home=home) as head:
        yield head | {"home": home}
    assert _all_gone(head["processes"])


def test_synth_submitted_to_a_head_started_the_usual_way_sends_the_home_token(usual_ray_head, sample_documents,
                                                                              tmp_path):
    address = usual_ray_head["address"]
    # The precondition of the bug: the head turned token auth on from ~/.ray/auth_token by itself.
    with urllib.request.urlopen(f"{address}/api/authentication_mode") as response:
        assert json.load(response)["authentication_mode"] == "token"
    env = _plain_env(HOME=str(usual_ray_head["home"]))
    out = tmp_path / "synth"
    proc = _submit_plain(env, "--target", address, "synth", "--mode", "template_only",
                         "--input", str(sample_documents), "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert _last_json(proc)["status"] == "SUCCEEDED"
    rows = pq.read_table(out / "part-00000.parquet").to_pylist()
    assert rows and {r["mode"] for r in rows} == {"template_only"}
    token = (usual_ray_head["home"] / ".ray" / "auth_token").read_text().strip()
    assert token not in proc.stdout + proc.stderr
    status = _submit_plain(env, "--target", address, "status", _last_json(proc)["job_id"])
    assert status.returncode == 0 and status.stdout.strip() == "SUCCEEDED"


def test_a_head_that_refuses_says_which_token_sources_were_tried(usual_ray_head, sample_documents, tmp_path):
    address = usual_ray_head["address"]
    synth = ("--target", address, "synth", "--mode", "template_only", "--input", str(sample_documents),
             "--output", str(tmp_path / "out"))
    empty_home = tmp_path / "empty-home"
    empty_home.mkdir()
    missing = _submit_plain(_plain_env(HOME=str(empty_home)), *synth)
    assert missing.returncode == 2
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("instructmix submit: error: the Ray head at"), missing.stderr
    assert "none was found" in lines[0]
    assert "RAY_AUTH_TOKEN (not set)" in lines[0] and "RAY_AUTH_TOKEN_PATH (not set)" in lines[0]
    assert str(empty_home / ".ray" / "auth_token") in lines[0]

    wrong = _submit_plain(_plain_env(HOME=str(usual_ray_head["home"]), RAY_AUTH_TOKEN="not-the-head-token"), *synth)
    assert wrong.returncode == 2
    lines = wrong.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused the token from RAY_AUTH_TOKEN" in lines[0], wrong.stderr
    assert "not-the-head-token" not in wrong.stderr

    gone = tmp_path / "gone"
    path = _submit_plain(_plain_env(HOME=str(usual_ray_head["home"]), RAY_AUTH_TOKEN_PATH=str(gone)), *synth)
    assert path.returncode == 2
    assert f"RAY_AUTH_TOKEN_PATH={gone} (No such file or directory)" in path.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


TOKEN_PARITY_SCRIPT = """
import json, os
from ray._raylet import AuthenticationTokenLoader
from jobs.submit import ray_auth_token

home, answers = os.environ["HOME"], []
cases = [{}, {"RAY_AUTH_TOKEN_PATH": home + "/named"}, {"RAY_AUTH_TOKEN": "from-env", "RAY_AUTH_TOKEN_PATH": home + "/named"},
         {"RAY_AUTH_TOKEN": ""}]
loader = AuthenticationTokenLoader.instance()
for case in cases:
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        os.environ.pop(name, None)
    os.environ.update(case)
    loader.reset_cache()
    answers.append([loader.get_raw_token(ignore_auth_mode=True), ray_auth_token()[0]])
print(json.dumps(answers))
"""


def test_the_token_is_found_where_rays_own_loader_finds_it(tmp_path):
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-home\n")
    (tmp_path / "named").write_text(" from-named-file \n")
    proc = subprocess.run([sys.executable, "-c", TOKEN_PARITY_SCRIPT], cwd=REPO, env=_plain_env(HOME=str(tmp_path)),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [ours for _, ours in answers] == ["from-home", "from-named-file", "from-env", "from-home"]
    assert all(ray == ours for ray, ours in answers), answers
