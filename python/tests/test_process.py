"""What needs a process of its own: Ctrl-C stops a long profile promptly, memory stays
bounded on a generator of a million strings, progress bars draw, and the wheel installs into
a fresh venv and imports."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def python(code, **kw):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, **kw)


def test_ctrl_c_stops_a_long_profile_promptly():
    code = (
        "import itertools, mtkit, sys\n"
        "print('started', flush=True)\n"
        "try:\n"
        "    mtkit.profile(('word %d' % i for i in itertools.count()), max_docs=None)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True); sys.exit(3)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "started"
    time.sleep(3)  # well into the endless source
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    took = time.monotonic() - sent
    assert p.returncode == 3 and "interrupted" in out, (p.returncode, out)
    assert took < 5, f"took {took:.1f} s to stop"


def peak_rss_mb(n):
    code = (
        "import mtkit, resource, json\n"
        f"p = mtkit.profile(('doc %d says hello' % i for i in range({n})), max_docs=None)\n"
        "print(json.dumps({'docs': p.totals['documents'],"
        " 'rss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    r = python(code)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_million_strings_from_a_generator_profile_in_bounded_memory():
    small, large = peak_rss_mb(100_000), peak_rss_mb(1_000_000)
    assert small["docs"] == 100_000 and large["docs"] == 1_000_000
    # Ten times the strings, not ten times the memory: a list of them would be ~60 MB more.
    assert large["rss"] - small["rss"] < 40, (small, large)


def test_progress_bars_draw_when_asked():
    code = (
        "import mtkit\n"
        "mtkit.profile(['text %d' % i for i in range(300000)], max_docs=None, name='many', progress=True)\n"
    )
    r = python(code)
    assert r.returncode == 0, r.stderr
    assert "many" in r.stderr and "docs" in r.stderr, r.stderr
    quiet = python(code.replace("progress=True", "progress=False"))
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_the_wheel_installs_into_a_fresh_venv_and_imports(tmp_path, tokenizer):
    wheels = os.environ.get("MTKIT_WHEELS")
    if not wheels:
        pytest.skip("MTKIT_WHEELS is not set (make test sets it after `make python`)")
    wheel = sorted(Path(wheels).glob("mtkit-*.whl"))
    assert wheel, f"no wheel in {wheels}: run `make python`"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    # polars pinned as the test venv's (PyPI, or pip's cache).
    r = subprocess.run([*pip, str(wheel[-1]), "polars==2.1.0"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    code = (
        "import mtkit, json\n"
        "p = mtkit.profile(['def add(a, b):\\n    return a + b'], tokenizer=%r)\n"
        "print(json.dumps([mtkit.__version__, p.totals['tokens'], p.unigrams['count'].sum()]))\n"
    ) % str(tokenizer)
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    version, tokens, total = json.loads(r.stdout)
    import mtkit

    assert version == mtkit.__version__
    # The same tokens as this environment's build counts for the same text.
    want = mtkit.profile(["def add(a, b):\n    return a + b"]).totals["tokens"]
    assert tokens == total == want


def test_huge_bucket_counts_raise_instead_of_killing_the_interpreter():
    # Under a 2 GiB address-space limit, as a notebook under a container's memory cap: the
    # tables of 2^30 buckets (8 GiB an order and worker) are refused with an exception that
    # names the figures, and the interpreter goes on.
    code = (
        "import resource, mtkit\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "try:\n"
        "    mtkit.profile(['a b c', 'b c d'], ngram=2, ngram_buckets=2**30)\n"
        "except Exception as e:\n"
        "    print('raised:', e, flush=True)\n"
        "print('alive', flush=True)\n"
    )
    p = python(code, timeout=120)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    assert "raised:" in p.stdout and "ngram_buckets=1073741824 (" in p.stdout, p.stdout
    assert "can still allocate" in p.stdout and "alive" in p.stdout, p.stdout
