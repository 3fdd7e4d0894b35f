"""Real local clusters for the submission tests: a Spark standalone master and
worker, and a Ray head, all on 127.0.0.1, started as child processes and
stopped one by one (never `ray stop`, which would stop every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["SPARK_LOCAL_IP"] = "127.0.0.1"  # every Spark daemon socket on loopback
    env["PYSPARK_PYTHON"] = sys.executable
    return env


def _wait(predicate, what: str, timeout: float, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        for proc in procs:
            if proc.poll() is not None:
                break
        else:
            time.sleep(0.5)
            continue
        break
    tails = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s\n{tails}")


def _tree(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        root = psutil.Process(proc.pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop_tree(processes: list[psutil.Process], grace: float = 15.0) -> None:
    """Terminate exactly these processes, then kill whatever is left."""
    for p in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def _json(url: str, headers: dict | None = None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as r:
            return json.load(r)
    except OSError:
        return None


def _answers(url: str) -> bool:
    """Whether an HTTP server answers at url, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@contextlib.contextmanager
def spark_standalone(log_dir: Path, cores: int = 2, memory: str = "3g") -> Iterator[dict]:
    """`spark://127.0.0.1:PORT` with one worker; yields the master URL and the processes."""
    port, ui, worker_ui = free_port(), free_port(), free_port()
    spark_class = str(BIN / "spark-class")
    master_cmd = [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                  "--port", str(port), "--webui-port", str(ui)]
    master_url = f"spark://127.0.0.1:{port}"
    worker_cmd = [spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
                  "--cores", str(cores), "--memory", memory, "--webui-port", str(worker_ui),
                  "--work-dir", str(log_dir / "worker")]
    logs = [log_dir / "spark-master.log", log_dir / "spark-worker.log"]
    procs: list[subprocess.Popen] = []
    started: list[psutil.Process] = []
    try:
        with open(logs[0], "wb") as out:
            procs.append(subprocess.Popen(master_cmd, stdout=out, stderr=subprocess.STDOUT, env=_env()))
        with open(logs[1], "wb") as out:
            procs.append(subprocess.Popen(worker_cmd, stdout=out, stderr=subprocess.STDOUT, env=_env()))

        def worker_alive() -> bool:
            state = _json(f"http://127.0.0.1:{ui}/json/")
            return bool(state) and any(w.get("state") == "ALIVE" for w in state.get("workers", []))

        _wait(worker_alive, "Spark standalone master + worker", 90, procs, logs)
        for proc in procs:
            started += _tree(proc)
        yield {"master": master_url, "ui": f"http://127.0.0.1:{ui}", "processes": started}
    finally:
        for proc in procs:
            started += [p for p in _tree(proc) if p not in started]
        stop_tree(started)


@contextlib.contextmanager
def ray_head(num_cpus: int = 2, home: Path | None = None) -> Iterator[dict]:
    """`ray start --head --dashboard-host 127.0.0.1 --block`; yields the Jobs API address
    and `env`, the variables a client needs to reach it.

    Without `home` the head gets a token of its own through RAY_AUTH_MODE and
    RAY_AUTH_TOKEN_PATH (returned in `env`). With `home` it starts the usual way: no
    RAY_AUTH_* variables, HOME=`home`, so Ray turns token auth on by itself when
    `home/.ray/auth_token` exists (as after any embedded run there) and `env` is just HOME."""
    import secrets

    port, dashboard, agent = free_port(), free_port(), free_port()
    temp_dir = tempfile.mkdtemp(prefix="imray", dir="/tmp")  # Ray's socket paths must stay short
    env = _env()
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(name, None)
    if home is None:
        token_path = Path(temp_dir) / "auth_token"
        token = secrets.token_hex(32)
        token_path.write_text(token)
        token_path.chmod(0o600)
        client_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}
    else:
        home_token = Path(home) / ".ray" / "auth_token"
        token = home_token.read_text().strip() if home_token.is_file() else None
        client_env = {"HOME": str(home)}
    cmd = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
           "--port", str(port), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
           "--num-cpus", str(num_cpus), "--num-gpus", "0", "--temp-dir", temp_dir, "--disable-usage-stats",
           "--include-dashboard", "true", "--dashboard-agent-listen-port", str(agent)]
    log = Path(temp_dir) / "ray-start.log"
    env |= client_env
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    proc = None
    started: list[psutil.Process] = []
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        address = f"http://127.0.0.1:{dashboard}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        _wait(lambda: _json(f"{address}/api/version", headers) is not None, "Ray head", 120, [proc], [log])
        # Jobs are handed to the head node's dashboard agent, which comes up after the API;
        # a submission before it answers fails with "No available agent to submit job".
        _wait(lambda: _answers(f"http://127.0.0.1:{agent}/"), "Ray dashboard agent", 120, [proc], [log])
        started = _tree(proc)
        yield {"address": address, "gcs": f"127.0.0.1:{port}", "processes": started, "temp_dir": temp_dir,
               "env": client_env}
    finally:
        if proc is not None:
            started += [p for p in _tree(proc) if p not in started]
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)  # `ray start --block` stops its node on SIGTERM
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            stop_tree(started, grace=10)
