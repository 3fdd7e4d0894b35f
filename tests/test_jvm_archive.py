"""The embedded JVM's class-data archive: recorded once, adopted when its JVM is gone, never stale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.engines import jvm_archive


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(jvm_archive.CACHE_ENV, str(tmp_path))
    if jvm_archive.java_binary() is None:
        pytest.skip("no java on this machine")
    return tmp_path


def _option(options: str, flag: str) -> str:
    return next(o.split("=", 1)[1] for o in options.split() if o.startswith(flag + "="))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_first_run_records_then_the_next_adopts_once_its_jvm_is_gone(cache):
    first = jvm_archive.archive_options()
    tmp = _option(first, "-XX:ArchiveClassesAtExit")
    assert os.path.dirname(tmp) == str(cache) and tmp.endswith(".tmp")
    # The JVM writes the file as it exits; while it runs (here: this process) nothing is adopted.
    with open(tmp, "wb") as f:
        f.write(b"archive")
    jvm_archive.note_writer(first, os.getpid())
    assert jvm_archive.recording()
    assert "-XX:ArchiveClassesAtExit=" in jvm_archive.archive_options()
    assert os.path.exists(tmp)

    jvm_archive.note_writer(first, _dead_pid())
    assert not jvm_archive.recording()
    adopted = jvm_archive.archive_options()
    final = _option(adopted, "-XX:SharedArchiveFile")
    assert Path(final).read_bytes() == b"archive"
    assert sorted(os.listdir(cache)) == [os.path.basename(final)]
    # Its log lines would otherwise reach the command's stdout.
    assert "-Xlog:cds*=off" in adopted


def test_a_record_without_its_jvm_note_is_left_alone(cache):
    tmp = _option(jvm_archive.archive_options(), "-XX:ArchiveClassesAtExit")
    with open(tmp, "wb") as f:
        f.write(b"partial")
    assert "-XX:ArchiveClassesAtExit=" in jvm_archive.archive_options()
    assert os.path.exists(tmp)


def test_another_spark_or_java_gets_another_archive(tmp_path):
    java = jvm_archive.java_binary() or sys.executable
    spark_home = tmp_path / "spark"
    (spark_home / "jars").mkdir(parents=True)
    name = jvm_archive.archive_name(java, str(spark_home), "4.1.0")
    assert name.startswith("spark-4.1.0-") and name.endswith(".jsa")
    assert jvm_archive.archive_name(java, str(spark_home), "4.2.0") != name
    assert jvm_archive.archive_name(sys.executable if java != sys.executable else "/bin/sh",
                                    str(spark_home), "4.1.0") != name


def test_switched_off_or_unwritable_runs_without(tmp_path, monkeypatch):
    monkeypatch.setenv(jvm_archive.CACHE_ENV, "off")
    assert jvm_archive.archive_options() == ""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(jvm_archive.CACHE_ENV, str(blocker / "jvm"))
    assert jvm_archive.archive_options() == ""
