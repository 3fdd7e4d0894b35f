"""Embedded Ray starts its own instance: a stale `ray_current_cluster` (left by a Ray
head that was killed) must not make a run attach to it.

The stale file is written where Ray looks for it, `<temp dir>/ray/ray_current_cluster`,
with Ray's temp dir moved to a private folder through `RAY_TMPDIR` (the same lookup as
`/tmp/ray`, asserted below): other Ray sessions on this machine keep working while the
test runs, and nothing of theirs is overwritten. HOME is private too, so the token an
embedded run creates (`~/.ray/auth_token`) lands there and not in the user's home.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.clusters import free_port
from tests.conftest import REPO

pytest.importorskip("ray")


@pytest.fixture
def stale_ray_env():
    """An environment whose Ray temp dir names a GCS address nothing listens on."""
    root = Path(tempfile.mkdtemp(prefix="imrs", dir="/tmp"))  # Ray's socket paths must stay short
    (root / "ray").mkdir()
    (root / "home").mkdir()
    dead = f"127.0.0.1:{free_port()}"
    (root / "ray" / "ray_current_cluster").write_text(dead)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TMPDIR")}
    env.update(RAY_TMPDIR=str(root), HOME=str(root / "home"), RAY_USAGE_STATS_ENABLED="0")
    yield {"env": env, "dead": dead, "file": str(root / "ray" / "ray_current_cluster")}
    shutil.rmtree(root, ignore_errors=True)


SESSION_SCRIPT = """
import json, time
t0 = time.time()
import ray
from ray._common.utils import get_ray_address_file
from ray._private.services import canonicalize_bootstrap_address
from jobs.engines.ray import init_ray

before = {"file": get_ray_address_file(None), "plain_init_would_join": canonicalize_bootstrap_address(None)}
t1 = time.time()
used = init_ray(None, num_cpus=1)

@ray.remote
def square(x):
    return x * x

result = ray.get(square.remote(7))
print(json.dumps(before | {"used": used, "gcs": ray.get_runtime_context().gcs_address, "result": result,
                           "seconds": time.time() - t1}))
ray.shutdown()
"""


def test_an_embedded_session_ignores_a_stale_ray_current_cluster(stale_ray_env):
    proc = subprocess.run([sys.executable, "-c", SESSION_SCRIPT], cwd=REPO, env=stale_ray_env["env"],
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    # The precondition of the bug: this is the file plain ray.init() reads, and it would join the dead head.
    assert got["file"] == stale_ray_env["file"]
    # (Ray rewrites 127.0.0.1 to this node's address; the port is the dead head's.)
    assert got["plain_init_would_join"].rsplit(":", 1)[1] == stale_ray_env["dead"].rsplit(":", 1)[1]
    # The session is a new local instance that runs tasks, started in seconds (the bug hung for minutes).
    assert got["used"] == "local" and got["gcs"] != got["plain_init_would_join"]
    assert got["result"] == 49
    assert got["seconds"] < 90


def test_template_only_synth_runs_embedded_beside_a_stale_ray_current_cluster(stale_ray_env, sample_documents,
                                                                             tmp_path):
    out = tmp_path / "synth"
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "synth", "--mode", "template_only",
                           "--input", str(sample_documents), "--output", str(out)],
                          cwd=REPO, env=stale_ray_env["env"], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert time.time() - started < 180
    rows = pq.read_table(out / "part-00000.parquet").to_pylist()
    assert rows and {r["mode"] for r in rows} == {"template_only"}
    assert "Failed to connect to GCS" not in proc.stderr


def test_the_address_used_is_the_one_given_else_ray_address_else_local(monkeypatch):
    import ray

    from jobs.engines.ray import init_ray

    calls = []
    monkeypatch.setattr(ray, "init", lambda address=None, **kw: calls.append((address, kw)))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert init_ray() == "local"
    # A submitted Ray job's driver is told its cluster through RAY_ADDRESS (Ray's job supervisor sets it).
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert init_ray() == "10.0.0.5:6379"
    assert init_ray("ray://head:10001", num_cpus=2) == "ray://head:10001"
    assert [a for a, _ in calls] == ["local", "10.0.0.5:6379", "ray://head:10001"]
    assert calls[-1][1]["num_cpus"] == 2 and calls[-1][1]["include_dashboard"] is False
