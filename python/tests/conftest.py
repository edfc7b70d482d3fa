"""Fixtures of the Python package's tests: the real `mtkit` CLI to compare with, the Pythia
tokenizer `make setup` installed, the shared real-data catalog, and real text to profile."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    if os.environ.get("MTKIT_CACHE"):
        return Path(os.environ["MTKIT_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "mtkit"
    return Path.home() / ".cache" / "mtkit"


@pytest.fixture(scope="session")
def mtkit_bin() -> Path:
    """The CLI the numbers are compared with (MTKIT_BIN, or the release build)."""
    p = Path(os.environ.get("MTKIT_BIN") or cache_dir() / "target" / "release" / "mtkit")
    if not p.exists():
        pytest.fail(f"the mtkit binary is not at {p}: run `make build` (or set MTKIT_BIN)")
    return p


@pytest.fixture(scope="session")
def tokenizer() -> Path:
    p = cache_dir() / "tokenizers" / "gpt-neox-20b.json"
    if not p.exists():
        pytest.fail(f"the Pythia tokenizer is not at {p}: run `make setup`")
    return p


@pytest.fixture(scope="session")
def shared_catalog() -> Path:
    """../shared/data/catalog.toml (or MTKIT_SHARED_CATALOG); CI requires it
    (MTKIT_REQUIRE_SHARED=1), a fresh clone skips with the reason."""
    p = Path(os.environ.get("MTKIT_SHARED_CATALOG") or REPO.parent / "shared/data/catalog.toml")
    if p.exists():
        return p
    if os.environ.get("MTKIT_REQUIRE_SHARED") == "1":
        pytest.fail(f"MTKIT_REQUIRE_SHARED=1 but the shared catalog is missing at {p}")
    pytest.skip(f"real-data test: no shared catalog at {p} (a fresh clone has no ../shared)")


def run_cli(mtkit_bin, *args, check=True, env=None):
    r = subprocess.run(
        [str(mtkit_bin), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if check and r.returncode != 0:
        raise AssertionError(f"mtkit {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r


@pytest.fixture(scope="session")
def real_texts() -> list[str]:
    """2,400 real documents that every machine with this venv has: the Python sources of the
    installed polars, datasets and pytest packages, cut into 60-line pieces (code, docstrings,
    comments, some non-ASCII), in a fixed order."""
    import datasets
    import polars
    import pytest as pt

    docs = []
    for pkg in (polars, datasets, pt):
        root = Path(pkg.__file__).parent
        for f in sorted(root.rglob("*.py")):
            lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
            for i in range(0, len(lines), 60):
                piece = "\n".join(lines[i : i + 60])
                if piece.strip():
                    docs.append(piece)
    assert len(docs) >= 2400, len(docs)
    return docs[:2400]


def write_jsonl(path: Path, records) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def catalog_for(path: Path, name: str, paths, text="{text}", role="target") -> Path:
    """A catalog file with one card `name` reading `paths`."""
    quoted = ", ".join(json.dumps(str(p)) for p in paths)
    path.write_text(
        f'[datasets.{name}]\nrole = "{role}"\npaths = [{quoted}]\ntext = {json.dumps(text)}\n'
    )
    return path


def cli_profile(mtkit_bin, tmp_path, card, catalog, *args):
    """The CLI's profile of `card` as {order: {ids tuple: count}}, read from its parquet with
    polars (not mtkit's reader)."""
    import polars as pl

    out = tmp_path / f"{card}-{len(list(tmp_path.iterdir()))}.parquet"
    run_cli(mtkit_bin, "profile", card, "--catalog", catalog, "--no-cache", "-q", "-o", out, *args)
    df = pl.read_parquet(out)
    counts = {}
    for order in sorted(set(df["order"].to_list())):
        part = df.filter(pl.col("order") == order)
        cols = [f"t{i + 1}" for i in range(order)]
        counts[order] = {
            tuple(row[:-1]): row[-1] for row in part.select([*cols, "count"]).iter_rows()
        }
    return counts


def py_counts(profile, orders):
    """A Python profile's counts in cli_profile's shape."""
    out = {}
    for n in orders:
        df = profile.ngrams(n)
        cols = ["token"] if n == 1 else [f"t{i + 1}" for i in range(n)]
        out[n] = {tuple(row[:-1]): row[-1] for row in df.select([*cols, "count"]).iter_rows()}
    return out
