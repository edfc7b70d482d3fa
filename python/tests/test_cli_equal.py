"""The numbers from Python equal the CLI's: proximity tables to the last printed digit,
profiles count for count (read from the CLI's parquet with polars), proposals and their
exports byte for byte, regressions to the last digit."""

import csv
import io
import json

import polars as pl
import pytest

import mtkit
from conftest import cli_profile, py_counts, run_cli


def same_to_last_digit(py_value, cli_text):
    """The CLI writes 15 significant digits; Python holds the f64 they were rounded from."""
    if cli_text == "":
        return py_value is None
    return py_value is not None and float(f"{py_value:.15g}") == float(cli_text)


def assert_table_equal(df: pl.DataFrame, cli_csv: str):
    rows = list(csv.DictReader(io.StringIO(cli_csv)))
    assert df.columns == list(rows[0].keys())
    assert len(df) == len(rows)
    for got, want in zip(df.iter_rows(named=True), rows):
        for col, text in want.items():
            v = got[col]
            if isinstance(v, str):
                assert v == text, (col, v, text)
            else:
                assert same_to_last_digit(v, text), (got["corpus"], col, v, text)


def test_proximity_of_the_demo_corpora_equals_the_cli(mtkit_bin, tmp_path):
    out = tmp_path / "p.csv"
    run_cli(mtkit_bin, "proximity", "demo-web", "demo-code", "demo-math", "demo-docstring",
            "--no-cache", "-q", "--csv", out)
    df = mtkit.proximity("demo-web", ["demo-code", "demo-math"], "demo-docstring", cache=False)
    assert_table_equal(df, out.read_text())
    # A candidate's PA is its sim minus P's, as the CLI computes it.
    sims = dict(zip(df["corpus"], df["sim"]))
    pa = dict(zip(df["corpus"], df["pa"]))
    assert pa["demo-code"] == sims["demo-code"] - sims["demo-web"]


def test_every_metric_on_real_corpora_equals_the_cli(mtkit_bin, shared_catalog, tmp_path):
    out = tmp_path / "p.csv"
    run_cli(mtkit_bin, "proximity", "c4", "starcoder", "codesearchnet", "--all-metrics",
            "--catalog", shared_catalog, "--no-cache", "-q", "--csv", out)
    df = mtkit.proximity("c4", "starcoder", "codesearchnet", all_metrics=True,
                         catalog=shared_catalog, cache=False)
    assert sorted(set(df["metric"])) == sorted(mtkit.metrics())
    assert_table_equal(df, out.read_text())


def test_bootstrap_and_mix_equal_the_cli(mtkit_bin, shared_catalog, tmp_path):
    out = tmp_path / "p.csv"
    run_cli(mtkit_bin, "proximity", "c4", "gsm8k", "math", "--mix", "0.3", "--mix-by", "docs",
            "--bootstrap", "40", "--seed", "7", "--max-docs", "300",
            "--catalog", shared_catalog, "--no-cache", "-q", "--csv", out)
    df = mtkit.proximity("c4", ["gsm8k"], "math", mix=0.3, mix_by="docs", bootstrap=40, seed=7,
                         max_docs=300, catalog=shared_catalog, cache=False)
    assert {"mix_token_weight", "sim_lo", "pa_hi"} <= set(df.columns)
    assert_table_equal(df, out.read_text())


def test_profiles_count_for_count_equal_the_cli(mtkit_bin, shared_catalog, tmp_path):
    # A template card (question + answer), exact n-grams to order 3, every document.
    want = cli_profile(mtkit_bin, tmp_path, "gsm8k", shared_catalog, "--ngram", "3",
                       "--max-docs", "all")
    p = mtkit.profile("gsm8k", catalog=shared_catalog, ngram=3, max_docs=None, cache=False)
    assert py_counts(p, [1, 2, 3]) == want
    assert p.totals["documents"] == 7473
    assert p.totals["tokens"] == sum(want[1].values())
    # Hashed buckets too.
    out = tmp_path / "h.parquet"
    run_cli(mtkit_bin, "profile", "c4", "--catalog", shared_catalog, "--ngram", "2",
            "--ngram-buckets", "4096", "--no-cache", "-q", "-o", out)
    h = mtkit.profile("c4", catalog=shared_catalog, ngram=2, ngram_buckets=4096, cache=False)
    cli = pl.read_parquet(out).filter(pl.col("order") == 2).select("bucket", "count")
    assert h.ngrams(2).to_dicts() == cli.sort("bucket").to_dicts()


def test_saved_profiles_round_trip_and_feed_proximity(mtkit_bin, tmp_path):
    p = mtkit.profile("demo-code", ngram=2, cache=False)
    path = tmp_path / "demo-code.parquet"
    p.save(path)
    back = mtkit.load_profile(path)
    assert back.unigrams.equals(p.unigrams) and back.ngrams(2).equals(p.ngrams(2))
    assert back.meta == p.meta and back.totals == p.totals
    # The CLI reads the saved file as a profile, and Python takes the path as a source.
    out = tmp_path / "p.csv"
    run_cli(mtkit_bin, "proximity", "demo-web", path, "demo-docstring", "--no-cache", "-q",
            "--csv", out)
    df = mtkit.proximity("demo-web", [str(path)], "demo-docstring", cache=False)
    assert_table_equal(df, out.read_text())


def test_similarity_matrix_equals_the_cli(mtkit_bin, tmp_path):
    names = ["demo-web", "demo-code", "demo-qa"]
    r = run_cli(mtkit_bin, "proximity", "--matrix", *names, "--metric", "cosine", "--no-cache", "-q")
    m = mtkit.similarity_matrix(names, metric="cosine", cache=False)
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert m.columns == rows[0]
    for got, want in zip(m.iter_rows(), rows[1:]):
        assert got[0] == want[0]
        assert all(same_to_last_digit(g, w) for g, w in zip(got[1:], want[1:]))


SUGGEST = dict(pretrain="demo-web", candidates=["demo-code", "demo-math", "demo-qa"],
               target="demo-docstring", total_steps=1000, tokens_per_step=400, top=4)
SUGGEST_CLI = ["suggest-mix", "--pretrain", "demo-web", "--candidates",
               "demo-code,demo-math,demo-qa", "--target", "demo-docstring",
               "--total-steps", "1000", "--tokens-per-step", "400", "--top", "4", "--no-cache", "-q",
               "--seq-len", "200"]


def test_suggest_mix_equals_the_cli_and_exports_its_bytes(mtkit_bin, tmp_path):
    with pytest.warns(UserWarning, match="available tokens"):
        df = mtkit.suggest_mix(**SUGGEST, cache=False)
    found = json.loads(run_cli(mtkit_bin, *SUGGEST_CLI, "--json").stdout)
    assert len(df) == len(found["proposals"])
    sources = [s["name"] for s in found["sources"]]
    assert df.columns[3 : 3 + len(sources)] == sources
    for row, prop in zip(df.iter_rows(named=True), found["proposals"]):
        assert row["start_step"] == prop["start_step"]
        assert row["pa"] == prop["pa"] and row["sim"] == prop["sim"]
        assert row["pareto"] == prop["pareto"]
        assert row["distance_from_p"] == prop["distance_from_p"]
        assert [row[n] for n in sources] == [w for _, w in prop["weights"]]
    for fmt in ["mtkit", "olmo-core", "megatron", "hf", "litgpt"]:
        want = run_cli(mtkit_bin, *SUGGEST_CLI, "--emit", fmt).stdout
        assert mtkit.export(df, fmt, seq_len=200) == want, fmt
    # Any row exports: rank 2 as the CLI's top proposal would with rank 2 first is not
    # available from the CLI, but the row's own proposal must round-trip unchanged.
    second = df.row(1, named=True)
    assert mtkit.export(second, "megatron") == mtkit.export(df, "megatron", rank=2)
    assert json.loads(second["proposal"])["proposal"]["start_step"] == second["start_step"]


def test_regress_equals_the_cli(mtkit_bin, tmp_path):
    runs = tmp_path / "runs.csv"
    runs.write_text(
        "target,mix,pa,ri\n"
        "code,starcoder,0.12,0.031\ncode,math,-0.02,0.004\ncode,flan,0.05,0.012\n"
        "math,starcoder,0.01,0.002\nmath,math,0.20,0.052\nmath,flan,0.04,0.018\n"
        "math,base,,\n"
    )
    out = tmp_path / "r.csv"
    run_cli(mtkit_bin, "report", "regress", runs, "--by", "target", "--bootstrap", "200", "-o", out)
    with pytest.warns(UserWarning, match="1 rows"):
        df = mtkit.regress(runs, by="target", bootstrap=200)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert df.columns == list(rows[0].keys())
    for got, want in zip(df.iter_rows(named=True), rows):
        for k, text in want.items():
            v = got[k]
            assert (str(v) == text) if isinstance(v, (str, int)) else same_to_last_digit(v, text), k
    # A DataFrame (polars or pandas) gives the same table as its CSV file.
    frame = pl.read_csv(runs)
    with pytest.warns(UserWarning):
        assert mtkit.regress(frame, by="target", bootstrap=200).equals(df)
    with pytest.warns(UserWarning):
        assert mtkit.regress(frame.to_pandas(), by="target", bootstrap=200).equals(df)
    # The slope of `all` by hand: OLS over the six rows with both columns.
    xs = [0.12, -0.02, 0.05, 0.01, 0.20, 0.04]
    ys = [0.031, 0.004, 0.012, 0.002, 0.052, 0.018]
    mx, my = sum(xs) / 6, sum(ys) / 6
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    assert df.filter(pl.col("group") == "all")["slope"][0] == pytest.approx(slope, rel=1e-12)


def test_overlap_equals_the_cli_on_cards_and_on_records(mtkit_bin, shared_catalog, tmp_path):
    import gzip
    from pathlib import Path

    table_csv, pairs_parquet = tmp_path / "o.csv", tmp_path / "p.parquet"
    run_cli(mtkit_bin, "overlap", "gsm8k", "flan", "--against", "gsm8k-test",
            "--catalog", shared_catalog, "-q", "--csv", table_csv, "--details", pairs_parquet)
    table, pairs = mtkit.overlap(["gsm8k", "flan"], "gsm8k-test", catalog=shared_catalog,
                                 details=True, progress=False)
    # overlap's CSV writes each float in full (the shortest text that reads back the same).
    rows = list(csv.DictReader(io.StringIO(table_csv.read_text())))
    assert table.columns == list(rows[0].keys())
    want = [(r["corpus"], *map(float, list(r.values())[1:])) for r in rows]
    assert want == [(r[0], *map(float, r[1:])) for r in table.iter_rows()]
    assert pairs.equals(pl.read_parquet(pairs_parquet))
    assert len(pairs) > 0
    # EVAL from memory (a list of dicts, rendered by the card's template): the same numbers.
    path = Path(shared_catalog).parent / "corpora" / "gsm8k-test.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    from_memory = mtkit.overlap("gsm8k", records, against_text="{question}\n{answer}",
                                catalog=shared_catalog, progress=False)
    assert from_memory.row(0) == table.row(0)


def test_proximity_with_overlap_equals_the_cli(mtkit_bin, shared_catalog, tmp_path):
    out = tmp_path / "p.csv"
    run_cli(mtkit_bin, "proximity", "c4", "flan", "gsm8k", "--overlap", "gsm8k-test",
            "--catalog", shared_catalog, "--no-cache", "-q", "--csv", out)
    df = mtkit.proximity("c4", "flan", "gsm8k", overlap="gsm8k-test", catalog=shared_catalog,
                         cache=False, progress=False)
    assert df.columns[-1] == "contaminated_share"
    assert_table_equal(df, out.read_text())
    # GSM8K's train split holds copies of test items; C4's sample none (docs/overlap.md).
    shares = dict(zip(df["corpus"], df["contaminated_share"]))
    assert shares["c4"] == 0.0 and shares["gsm8k"] > 0.0
    with pytest.raises(mtkit.MtkitError, match="c4 is a Profile; give the corpus itself"):
        mtkit.proximity(mtkit.profile("c4", catalog=shared_catalog, progress=False), "flan", "gsm8k",
                        overlap="gsm8k-test", catalog=shared_catalog, progress=False)


def test_overlap_of_strings_in_memory_finds_a_planted_copy(tmp_path):
    item = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
    corpus = ["An unrelated document about the weather in Lisbon.", "Intro. " + item + " Outro."]
    t = mtkit.overlap([corpus], [item, "Something else entirely, long enough to hold a few grams."],
                      n=8, progress=False)
    assert t["documents"].to_list() == [2]
    assert t["contaminated_documents"].to_list() == [1]
    assert t["eval_items_hit"].to_list() == [1]
    with pytest.raises(mtkit.MtkitError, match="overlap needs the corpus itself"):
        mtkit.overlap([mtkit.profile([item], progress=False)], [item])


def test_score_and_select_equal_the_cli(mtkit_bin, shared_catalog, tmp_path):
    scores = tmp_path / "s.parquet"
    run_cli(mtkit_bin, "score", "math", "flan", "--target", "sciq", "--catalog", shared_catalog,
            "-q", "-o", scores)
    df = mtkit.score(["math", "flan"], "sciq", catalog=shared_catalog, progress=False)
    assert df.equals(pl.read_parquet(scores))
    sel, report_file = tmp_path / "sel.parquet", tmp_path / "r.json"
    run_cli(mtkit_bin, "select", "math", "flan", "--target", "sciq", "--catalog", shared_catalog,
            "-n", "300", "--seed", "3", "--max-share", "flan=0.9", "--exclude-overlap", "gsm8k-test",
            "-q", "-o", sel, "--report", report_file)
    got, report = mtkit.select(["math", "flan"], "sciq", n=300, seed=3, max_share={"flan": 0.9},
                               exclude_overlap="gsm8k-test", catalog=shared_catalog, progress=False)
    assert got.equals(pl.read_parquet(sel))
    cli_report = json.loads(report_file.read_text())
    for key in ("pool", "selected", "sources", "selection", "random_draw", "kl_reduction",
                "effective_sample_size", "excluded_by_overlap"):
        assert report[key] == cli_report[key], key
    assert len(got) == 300
    with pytest.raises(mtkit.MtkitError, match="exactly one of n=, tokens= or fraction="):
        mtkit.select(["math"], "sciq", catalog=shared_catalog, progress=False)


@pytest.mark.parametrize("fmt", ["mtkit", "megatron"])
def test_tokenize_writes_the_clis_bytes(mtkit_bin, tmp_path, fmt):
    from pathlib import Path

    run_cli(mtkit_bin, "tokenize", "demo-web", "demo-docstring", "--format", fmt, "--max-docs", "300",
            "-q", "-o", tmp_path / "cli")
    table = mtkit.tokenize(["demo-web", "demo-docstring"], tmp_path / "py", format=fmt, max_docs=300,
                           progress=False)

    def files(root: Path) -> dict:
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    cli, py = files(tmp_path / "cli"), files(tmp_path / "py")
    assert list(cli) == list(py) and len(cli) > 2
    assert cli == py
    assert table["corpus"].to_list() == ["demo-web", "demo-docstring"]
    # demo-docstring is a prompt/response card: mtkit's files keep its mask, Megatron's cannot.
    docstring = table.row(1, named=True)
    assert (docstring["has_prompt"], docstring["prompt_mask_dropped"]) == (fmt == "mtkit", fmt == "megatron")
    total = docstring["train_docs"] + docstring["val_docs"]
    assert total == 300


def test_shards_counted_within_a_memory_budget_merge_to_the_clis_whole_profile(mtkit_bin, real_texts, tmp_path):
    # 2,400 real documents as a file; the CLI profiles it whole, exact n-grams to order 3.
    from conftest import catalog_for, write_jsonl

    data = write_jsonl(tmp_path / "code.jsonl", [{"text": t} for t in real_texts])
    cat = catalog_for(tmp_path / "c.toml", "code", [data])
    want = cli_profile(mtkit_bin, tmp_path, "code", cat, "--ngram", "3", "--max-docs", "all")
    # Python: three shards, two of them counted within a 1 MiB budget (3-grams of 800 real
    # documents do not fit it, so they spill sorted runs to `tmp` and merge them), given as
    # (k, n) and as the CLI's "k/n".
    opts = dict(catalog=cat, ngram=3, max_docs=None, cache=False, progress=False)
    parts = [
        mtkit.profile("code", shard=(1, 3), memory="1M", tmp=tmp_path, **opts),
        mtkit.profile("code", shard="2/3", memory=1 << 20, **opts),
        mtkit.profile("code", shard=(3, 3), **opts),
    ]
    assert [p.meta["shards"] for p in parts] == [[{"index": k, "count": 3}] for k in (1, 2, 3)]
    assert sum(p.totals["documents"] for p in parts) == 2400
    # A CLI-written shard file merges with Python's profiles as one of them.
    shard3 = tmp_path / "shard3.parquet"
    run_cli(mtkit_bin, "profile", "code", "--catalog", cat, "--ngram", "3", "--max-docs", "all",
            "--shard", "3/3", "--no-cache", "-q", "-o", shard3)
    whole = mtkit.merge_profiles([parts[0], parts[1], shard3])
    assert py_counts(whole, [1, 2, 3]) == want
    assert whole.totals["documents"] == 2400 and whole.meta.get("shards") is None
    assert py_counts(mtkit.merge_profiles(parts), [1, 2, 3]) == want
    # Missing shards are named, in Python's words; partial=True writes what there is.
    with pytest.raises(mtkit.MtkitError, match=r"not shards 2/3 \(missing\).*partial=True"):
        mtkit.merge_profiles([parts[0], parts[2]])
    some = mtkit.merge_profiles([parts[0], parts[2]], partial=True)
    assert some.meta["shards"] == [{"index": 1, "count": 3}, {"index": 3, "count": 3}]
    # Nothing is left in tmp by the spilled counting.
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]
