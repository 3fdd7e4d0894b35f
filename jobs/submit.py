"""`instructmix submit`: a stage as a job on an existing Spark or Ray cluster.

Spark stages (mine, mix) go through `spark-submit` with the project's packages
zipped into `--py-files`; `--detach` leaves spark-submit running in the
background under a local job record (Python drivers run in client mode on
standalone clusters, so the submitting machine is where the driver lives). The
synth stage goes to the Ray Jobs API of a head (`http://head:8265`) with the
packages as the runtime_env working_dir.

Commands are argument lists; credentials come from the environment: the
spark-submit child inherits it, and for Ray only the variables named in
`ray.forward_env` are passed, their values never printed or recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from jobs.config import ConfigError, ResourcesConfig, load_config
from jobs.engines.spark import PACKAGE_ROOT, SHIPPED_PACKAGES, package_zip
from jobs.errors import UserError
from jobs.workdir import pid_alive

SPARK_STAGES = ("mine", "mix")
RAY_STAGES = ("synth",)
# Options whose values are paths: made absolute for jobs that run elsewhere.
PATH_OPTIONS = ("--input", "--output", "--config")
TERMINAL_RAY_STATES = ("SUCCEEDED", "FAILED", "STOPPED")
# `--conf key=value` pairs whose key looks like a credential are shown as key=*** in
# what we print and record (the pattern of Spark's own spark.redaction.regex).
SECRET_KEY = re.compile(r"(?i)secret|password|token|credential|access[._-]?key|session[._-]?key")


def redacted(cmd: list[str]) -> list[str]:
    """The command as it may be shown: values of credential-like confs replaced by ***."""
    out = []
    for arg in cmd:
        key, eq, _ = arg.partition("=")
        out.append(f"{key}=***" if eq and SECRET_KEY.search(key) else arg)
    return out


def target_kind(target: str) -> str:
    if target.startswith(("http://", "https://")):
        return "ray"
    if target.startswith(("spark://", "k8s://", "mesos://", "local")) or target == "yarn":
        return "spark"
    raise ConfigError(f"--target {target!r}: expected spark://host:port, k8s://..., yarn, or http://ray-head:8265")


def check_stage_target(stage: str, target: str) -> str:
    kind = target_kind(target)
    wanted = "spark" if stage in SPARK_STAGES else "ray"
    if kind != wanted:
        example = "spark://host:7077" if wanted == "spark" else "http://ray-head:8265"
        raise ConfigError(f"stage {stage!r} runs on {wanted.capitalize()}; --target {target!r} is a {kind} "
                          f"target (use e.g. {example})")
    return kind


def _is_local_path(value: str) -> bool:
    return "://" not in value


def absolute_paths(stage_args: list[str]) -> list[str]:
    """Local paths after --input/--output/--config, made absolute (the job's working directory differs)."""
    out: list[str] = []
    current: str | None = None
    for arg in stage_args:
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            current = name if name in PATH_OPTIONS and not eq else None
            if eq and name in PATH_OPTIONS and _is_local_path(value):
                arg = f"{name}={os.path.abspath(value)}"
            out.append(arg)
            continue
        if current and _is_local_path(arg):
            arg = os.path.abspath(arg)
        out.append(arg)
    return out


# --- Spark -------------------------------------------------------------------------


def spark_submit_command(target: str, stage: str, stage_args: list[str], resources: ResourcesConfig,
                         zip_path: str) -> list[str]:
    spark = resources.spark
    cmd = [spark.spark_submit, "--master", target, "--deploy-mode", spark.deploy_mode,
           "--name", f"instructmix-{stage}", "--py-files", zip_path]
    if spark.driver_memory:
        cmd += ["--driver-memory", spark.driver_memory]
    if spark.executor_memory:
        cmd += ["--executor-memory", spark.executor_memory]
    if spark.executor_cores:
        cmd += ["--executor-cores", str(spark.executor_cores)]
    if spark.num_executors:
        cmd += ["--conf", f"spark.executor.instances={spark.num_executors}"]
    # Executors run the same interpreter the driver does (set by jobs.engines.spark).
    for key, value in sorted(spark.conf.items()):
        cmd += ["--conf", f"{key}={value}"]
    cmd += [str(PACKAGE_ROOT / "jobs" / "cli.py"), stage, *stage_args]
    return cmd


def _spark_submit_program(resources: ResourcesConfig) -> str:
    name = resources.spark.spark_submit
    found = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if not found:
        raise ConfigError(f"spark.spark_submit: {name!r} not found on PATH (pyspark installs one next to python)")
    return found


def jobs_dir() -> Path:
    """Where detached Spark submissions keep their record and log."""
    root = os.environ.get("INSTRUCTMIX_JOBS_DIR") or os.path.join(Path.home(), ".cache", "instructmix", "jobs")
    return Path(root)


def submit_spark(target: str, stage: str, stage_args: list[str], resources: ResourcesConfig,
                 detach: bool) -> tuple[int, str]:
    program = _spark_submit_program(resources)
    resources = resources.model_copy(update={"spark": resources.spark.model_copy(update={"spark_submit": program})})
    job_id = f"spark-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    job_dir = jobs_dir() / job_id
    job_dir.mkdir(parents=True)
    zip_path = package_zip(str(job_dir))
    cmd = spark_submit_command(target, stage, absolute_paths(stage_args), resources, zip_path)
    env = dict(os.environ)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    shown = redacted(cmd)
    record = {"job_id": job_id, "target": target, "stage": stage, "command": shown, "submitted": time.time()}
    log_path = job_dir / "log"
    print(f"instructmix submit: {job_id}: {shlex.join(shown)}", file=sys.stderr)
    if not detach:
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
            for line in proc.stdout:  # shown live and kept for `submit logs`
                log_file.write(line)
                sys.stderr.buffer.write(line)
                sys.stderr.flush()
            rc = proc.wait()
        record.update(pid=proc.pid, returncode=rc, finished=time.time())
        (job_dir / "job.json").write_text(json.dumps(record, indent=2))
        return rc, job_id
    # A small watcher outlives us, runs spark-submit and records its exit status.
    watcher = [sys.executable, "-m", "jobs.submit", "--watch", str(job_dir), "--", *cmd]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(watcher, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, cwd=str(PACKAGE_ROOT))
    record.update(pid=proc.pid)
    (job_dir / "job.json").write_text(json.dumps(record, indent=2))
    return 0, job_id


def _watch(job_dir: str, cmd: list[str]) -> int:
    """Run spark-submit in the detached job's session and record how it ended."""
    rc = subprocess.run(cmd, check=False).returncode
    Path(job_dir, "returncode").write_text(str(rc))
    return rc


def _spark_record(job_id: str) -> tuple[Path, dict]:
    job_dir = jobs_dir() / job_id
    path = job_dir / "job.json"
    if not path.is_file():
        raise ConfigError(f"no Spark job {job_id!r} under {jobs_dir()} (set INSTRUCTMIX_JOBS_DIR if it lives elsewhere)")
    return job_dir, json.loads(path.read_text())


def spark_status(job_id: str) -> str:
    job_dir, record = _spark_record(job_id)
    if "returncode" in record:
        return "SUCCEEDED" if record["returncode"] == 0 else "FAILED"
    rc_file = job_dir / "returncode"
    if rc_file.is_file():
        return "SUCCEEDED" if rc_file.read_text().strip() == "0" else "FAILED"
    if (job_dir / "stopped").is_file():
        return "STOPPED"
    return "RUNNING" if pid_alive(record["pid"]) else "FAILED"


def spark_logs(job_id: str) -> str:
    job_dir, _ = _spark_record(job_id)
    log_path = job_dir / "log"
    return log_path.read_text(errors="replace") if log_path.is_file() else ""


def spark_stop(job_id: str) -> str:
    job_dir, record = _spark_record(job_id)
    status = spark_status(job_id)
    if status != "RUNNING":
        return status
    (job_dir / "stopped").write_text(str(time.time()))
    try:
        os.killpg(record["pid"], signal.SIGTERM)  # the watcher leads its own session
    except ProcessLookupError:
        pass
    return "STOPPED"


# --- Ray ---------------------------------------------------------------------------


def working_dir_for_ray(dest: str, stage_args: list[str]) -> tuple[str, list[str]]:
    """The project's packages (and a --config file) in a folder the Ray job runs in."""
    for package in SHIPPED_PACKAGES:
        shutil.copytree(PACKAGE_ROOT / package, Path(dest) / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    args: list[str] = []
    take_config = False
    for arg in stage_args:
        if take_config and _is_local_path(arg):
            shutil.copy(arg, Path(dest) / "submitted-config.yaml")
            arg = "submitted-config.yaml"
        take_config = arg == "--config"
        args.append(arg)
    return dest, args


def ray_job_spec(stage: str, stage_args: list[str], resources: ResourcesConfig, working_dir: str) -> dict:
    ray = resources.ray
    env_vars = {name: os.environ[name] for name in ray.forward_env if name in os.environ}
    runtime_env: dict = {"working_dir": working_dir, "env_vars": env_vars}
    if ray.pip:
        runtime_env["pip"] = list(ray.pip)
    return {
        "entrypoint": shlex.join(["python", "-m", "jobs.cli", stage, *stage_args]),
        "runtime_env": runtime_env,
        "entrypoint_num_cpus": ray.entrypoint_num_cpus,
        "entrypoint_num_gpus": ray.entrypoint_num_gpus,
    }


# Where Ray's own CLI and SDK look for the token of a head, in this order (Ray's
# AuthenticationTokenLoader): the variable, the file it names, the file in the home folder.
TOKEN_ENV, TOKEN_PATH_ENV = "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"


def ray_auth_token() -> tuple[str | None, str, list[str]]:
    """(token or None, where it came from, every source tried with what was found there).

    The order and rules are Ray's: a non-empty RAY_AUTH_TOKEN wins; else a set
    RAY_AUTH_TOKEN_PATH is the only file read (Ray does not fall back when it is
    missing); else ~/.ray/auth_token, which every embedded `ray.init()` creates and a
    later `ray start --head` on the machine turns token auth on from."""
    tried: list[str] = []
    value = os.environ.get(TOKEN_ENV, "").strip()
    if value:
        return value, TOKEN_ENV, [f"{TOKEN_ENV} (set)"]
    tried.append(f"{TOKEN_ENV} (not set)")
    named = os.environ.get(TOKEN_PATH_ENV)
    path = Path(named).expanduser() if named else Path.home() / ".ray" / "auth_token"
    source = f"{TOKEN_PATH_ENV}={path}" if named else str(path)
    if not named:
        tried.append(f"{TOKEN_PATH_ENV} (not set)")
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        tried.append(f"{source} ({exc.strerror or type(exc).__name__})")
        return None, "", tried
    tried.append(f"{source} ({'read' if value else 'empty'})")
    return (value or None), (source if value else ""), tried


def _head_auth_mode(target: str) -> str | None:
    """"token" or "disabled" as the head reports it on its public endpoint; None when
    it cannot say (an older Ray, a proxy): then a token found is sent anyway."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{target.rstrip('/')}/api/authentication_mode", timeout=10) as response:
            return json.load(response).get("authentication_mode")
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--target {target}: the Ray Jobs API cannot be reached ({exc}); is the head running, "
                          "with --dashboard-host reachable from here?") from exc


def _ray_client(target: str):
    """A Jobs API client that sends the head's token when the head requires one.

    Ray's SDK adds the token only when this process has RAY_AUTH_MODE=token, but a head
    started with plain `ray start --head` turns token auth on by itself when it finds
    ~/.ray/auth_token; so ask the head, and look for the token where Ray's CLI does."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    mode = _head_auth_mode(target)
    token, source, tried = ray_auth_token() if mode != "disabled" else (None, "", [])
    if mode == "token" and token is None:
        raise UserError(f"the Ray head at {target} requires an authentication token and none was found (tried: "
                        f"{'; '.join(tried)}); put the head's token (`ray get-auth-token` on the head) in "
                        f"{TOKEN_ENV}, in a file named by {TOKEN_PATH_ENV}, or in ~/.ray/auth_token")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return JobSubmissionClient(target, headers=headers)
    except AuthenticationError as exc:
        used = f"the token from {source}" if token else "no token"
        raise UserError(f"the Ray head at {target} refused {used} (tried: {'; '.join(tried) or 'nothing'}); use "
                        f"the head's token (`ray get-auth-token` on the head) in {TOKEN_ENV}, in a file named by "
                        f"{TOKEN_PATH_ENV}, or in ~/.ray/auth_token") from exc


def submit_ray(target: str, stage: str, stage_args: list[str], resources: ResourcesConfig,
               detach: bool) -> tuple[int, str]:
    client = _ray_client(target)
    missing = [name for name in resources.ray.forward_env if name not in os.environ]
    if missing:
        print(f"instructmix submit: not set here, not forwarded: {missing}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="instructmix-ray-job-") as tmp:
        working_dir, args = working_dir_for_ray(tmp, absolute_paths(stage_args))
        spec = ray_job_spec(stage, args, resources, working_dir)
        job_id = client.submit_job(**spec)
    forwarded = sorted(spec["runtime_env"]["env_vars"])
    print(f"instructmix submit: {job_id}: {spec['entrypoint']} (forwarded env: {forwarded or 'none'})", file=sys.stderr)
    if detach:
        return 0, job_id
    status = _follow_ray(client, job_id)
    return (0 if status == "SUCCEEDED" else 1), job_id


def _follow_ray(client, job_id: str, poll_seconds: float = 1.0) -> str:
    shown = 0
    while True:
        status = str(client.get_job_status(job_id).value)
        logs = client.get_job_logs(job_id)
        if len(logs) > shown:
            sys.stderr.write(logs[shown:])
            sys.stderr.flush()
            shown = len(logs)
        if status in TERMINAL_RAY_STATES:
            return status
        time.sleep(poll_seconds)


# --- the command -------------------------------------------------------------------


def main_submit(args: argparse.Namespace) -> int:
    resources = load_config(args.resources, ResourcesConfig)
    kind = target_kind(args.target)
    if args.action in ("status", "logs", "stop"):
        if len(args.rest) != 1:
            raise ConfigError(f"submit {args.action}: give exactly one JOB_ID")
        job_id = args.rest[0]
        if kind == "spark":
            answer = {"status": spark_status, "logs": spark_logs, "stop": spark_stop}[args.action](job_id)
        else:
            client = _ray_client(args.target)
            if args.action == "status":
                answer = str(client.get_job_status(job_id).value)
            elif args.action == "logs":
                answer = client.get_job_logs(job_id)
            else:
                client.stop_job(job_id)
                answer = str(client.get_job_status(job_id).value)
        print(answer)
        return 0
    check_stage_target(args.action, args.target)
    stage_args = list(args.rest)
    if stage_args[:1] == ["--"]:
        stage_args = stage_args[1:]
    submit = submit_spark if kind == "spark" else submit_ray
    rc, job_id = submit(args.target, args.action, stage_args, resources, args.detach)
    print(json.dumps({"job_id": job_id, "target": args.target, "stage": args.action,
                      "status": "SUBMITTED" if args.detach else ("SUCCEEDED" if rc == 0 else "FAILED")}))
    return rc


if __name__ == "__main__":
    # `python -m jobs.submit --watch JOB_DIR -- CMD...`: the detached Spark job's watcher.
    if len(sys.argv) > 3 and sys.argv[1] == "--watch" and sys.argv[3] == "--":
        sys.exit(_watch(sys.argv[2], sys.argv[4:]))
    sys.exit("usage: python -m jobs.submit --watch JOB_DIR -- COMMAND...")
