"""A class-data archive for the embedded Spark JVM: Spark's classes loaded from one mapped file.

An embedded `instructmix` command starts a JVM that loads about 15,000 classes
from Spark's jars before its first task; on one core that is 3.6 s of the
session's start and more inside the first jobs. Java's dynamic class-data
sharing (JDK 13+, JEP 350; Spark 4 needs Java 17) records the classes a run
loaded into an archive when the JVM exits (`-XX:ArchiveClassesAtExit`), and
later JVMs map it instead of parsing and verifying the jars
(`-XX:SharedArchiveFile`). Measured with bench/bench_mining.py's 620 MB job
pinned to one core: 2.8 s less per run, start and first jobs alike.

The archive is a cache, never an input: its name is a hash of everything the
JVM checks it against (the Java binary, the Spark version and its jar folder),
so an upgrade starts a new one, and a JVM that still finds it unusable ignores
it (`-Xshare:auto`, the default) and runs as without. The first run on a
machine writes `<name>.<pid>.tmp` as its JVM exits (about 160 MB, a few
seconds once; the JVM's pid is noted beside it in `<name>.<pid>.tmp.pid`); the
next run adopts it under its final name once that JVM is gone. Its folder is `$INSTRUCTMIX_JVM_CACHE`, else
`$XDG_CACHE_HOME/instructmix/jvm`, else `~/.cache/instructmix/jvm`; set
`INSTRUCTMIX_JVM_CACHE=off` to run without one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from jobs.workdir import pid_alive

CACHE_ENV = "INSTRUCTMIX_JVM_CACHE"
# The archive's own log lines ("Skipping ... Signed JAR" while dumping) would go to the
# command's stdout, which carries the command's JSON result.
_QUIET = "-Xlog:cds*=off -Xlog:class+path=off"


def cache_folder() -> Path | None:
    value = os.environ.get(CACHE_ENV)
    if value and value.lower() in ("off", "0", "false", "no"):
        return None
    if value:
        return Path(value).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "instructmix" / "jvm"


def java_binary() -> str | None:
    """The `java` spark-submit starts: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = os.path.join(home, "bin", "java") if home else shutil.which("java")
    return os.path.realpath(found) if found and os.path.exists(found) else None


def archive_name(java: str, spark_home: str, spark_version: str) -> str:
    """What the archive was recorded against, hashed: another Java or Spark gets another file."""
    jars = Path(spark_home) / "jars"
    stat = os.stat(java)
    key = "\n".join([java, str(stat.st_size), str(stat.st_mtime_ns), spark_version, str(jars),
                     str(jars.stat().st_mtime_ns) if jars.is_dir() else "-"])
    return f"spark-{spark_version}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"


def _writer_done(tmp: Path) -> bool:
    """Whether the JVM that records `tmp` has exited (it writes the archive on its way out)."""
    try:
        pid = int((tmp.parent / f"{tmp.name}.pid").read_text().strip())
    except (OSError, ValueError):
        return False  # its session never started, or the note is not written yet
    return not pid_alive(pid)


def _adopt_finished(folder: Path, name: str) -> None:
    """Give a finished `<name>.<pid>.tmp` the final name; remove the finished others."""
    final = folder / name
    for tmp in sorted(folder.glob(f"{name}.*.tmp")):
        if not _writer_done(tmp):
            continue
        try:
            if not final.exists() and tmp.stat().st_size > 0:
                os.replace(tmp, final)
            else:
                tmp.unlink()
            (tmp.parent / f"{tmp.name}.pid").unlink()
        except OSError:
            pass


def recording() -> bool:
    """Whether a JVM is still writing this machine's archive (it does so after its command exited)."""
    folder = cache_folder()
    if folder is None or not folder.is_dir():
        return False
    # The note exists from the session's start, the archive only once the JVM starts writing it.
    return any(not _writer_done(note.with_suffix("")) for note in folder.glob("*.tmp.pid"))


def note_writer(options: str, jvm_pid: int) -> None:
    """After the session started: note which JVM records the archive `options` asked for."""
    for option in options.split():
        if option.startswith("-XX:ArchiveClassesAtExit="):
            tmp = option.split("=", 1)[1]
            try:
                Path(f"{tmp}.pid").write_text(str(jvm_pid))
            except OSError:
                pass


def archive_options() -> str:
    """JVM options that use this machine's archive, or record it when there is none yet ("" when off)."""
    folder = cache_folder()
    java = java_binary()
    if folder is None or java is None:
        return ""
    import pyspark

    spark_home = os.environ.get("SPARK_HOME") or os.path.dirname(pyspark.__file__)
    try:
        name = archive_name(java, spark_home, pyspark.__version__)
        folder.mkdir(parents=True, exist_ok=True)
        _adopt_finished(folder, name)
    except OSError:  # an unwritable cache: run without one
        return ""
    final = folder / name
    if final.exists():
        return f"-XX:SharedArchiveFile={final} {_QUIET}"
    # Each first run records its own file, so two at once never write the same one.
    return f"-XX:ArchiveClassesAtExit={folder / f'{name}.{os.getpid()}.tmp'} {_QUIET}"
