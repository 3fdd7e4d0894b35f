"""What a cluster executor imports: the zip `spark_session.package_zip()` ships must work on its own."""

from __future__ import annotations

import json
import subprocess
import sys

from jobs.engines.spark import package_zip

PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from collections import Counter
import transforms
from transforms.mine.document import PairMiner
html = ("<html><body><main><h2>FAQ</h2><h3>How do I renew a library book online?</h3>"
        "<p>Sign in to your account, open Loans and press Renew next to the book you want to keep longer.</p>"
        "</main></body></html>")
counters = Counter()
rows = list(PairMiner().mine("https://zip.example/faq", html, None, counters))
print(json.dumps({"module": transforms.__file__, "rows": len(rows), "counters": counters}))
"""


def test_the_shipped_zip_mines_without_the_source_tree(tmp_path):
    zip_path = package_zip(str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", PROBE, zip_path], cwd=tmp_path, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["module"].startswith(zip_path), "transforms must come from the zip, as on an executor"
    assert result["rows"] == 1, result
