"""Every kind of source gives the profile a JSONL file of the same records gives the CLI:
a list of str, a generator, a polars Series and DataFrame, a Hugging Face Dataset and
IterableDataset, files named from Python; and the CLI reads `save_to_disk` folders and
datasets' Arrow files as it reads the JSONL."""

import datasets
import polars as pl
import pytest

import mtkit
from conftest import catalog_for, cli_profile, py_counts, run_cli, write_jsonl


@pytest.fixture(scope="module")
def corpus(real_texts, tmp_path_factory, mtkit_bin):
    """The real texts as JSONL and the CLI's profiles of it: a sample of 1000 (the default)
    and every document."""
    d = tmp_path_factory.mktemp("corpus")
    jsonl = write_jsonl(d / "docs.jsonl", [{"text": t} for t in real_texts])
    cat = catalog_for(d / "cat.toml", "docs", [jsonl])
    sample = cli_profile(mtkit_bin, d, "docs", cat, "--ngram", "2")
    every = cli_profile(mtkit_bin, d, "docs", cat, "--ngram", "2", "--max-docs", "all")
    return dict(dir=d, jsonl=jsonl, cat=cat, sample=sample, every=every, texts=real_texts)


def in_memory_sources(texts):
    yield "list", texts
    yield "tuple", tuple(texts)
    yield "generator", (t for t in texts)
    yield "series", pl.Series("text", texts)
    yield "dataframe", pl.DataFrame({"text": texts, "n": range(len(texts))})
    yield "dataset", datasets.Dataset.from_dict({"text": texts})
    yield "iterable dataset", datasets.Dataset.from_dict({"text": texts}).to_iterable_dataset()
    yield "dicts", [{"text": t, "other": 1} for t in texts]


@pytest.mark.parametrize("max_docs", [1000, None], ids=["sample", "every"])
def test_in_memory_sources_profile_as_their_jsonl(corpus, max_docs):
    want = corpus["sample"] if max_docs else corpus["every"]
    for kind, source in in_memory_sources(corpus["texts"]):
        p = mtkit.profile(source, ngram=2, max_docs=max_docs, name="docs")
        assert py_counts(p, [1, 2]) == want, kind
        assert p.totals["documents"] == (1000 if max_docs else len(corpus["texts"])), kind


def test_files_from_python_profile_as_the_cli(corpus):
    for source in [str(corpus["jsonl"]), corpus["jsonl"], mtkit.Files(corpus["jsonl"]),
                   str(corpus["dir"] / "*.jsonl")]:
        p = mtkit.profile(source, ngram=2, cache=False)
        assert py_counts(p, [1, 2]) == corpus["sample"], source
    # The catalog card by name, too.
    p = mtkit.profile("docs", catalog=corpus["cat"], ngram=2, cache=False)
    assert py_counts(p, [1, 2]) == corpus["sample"]


def test_templates_render_columns_as_the_cli(mtkit_bin, tmp_path, real_texts):
    qs = real_texts[:500]
    ans = [t[::-1][:200] for t in real_texts[500:1000]]
    records = [{"question": q, "answer": a, "id": i} for i, (q, a) in enumerate(zip(qs, ans))]
    jsonl = write_jsonl(tmp_path / "qa.jsonl", records)
    template = "Q: {question}\nA: {answer}"
    cat = catalog_for(tmp_path / "cat.toml", "qa", [jsonl], text=template)
    want = cli_profile(mtkit_bin, tmp_path, "qa", cat, "--max-docs", "all", "--ngram", "1")
    for kind, source in [
        ("dicts", records),
        ("dataframe", pl.DataFrame(records)),
        ("dataset", datasets.Dataset.from_list(records)),
        ("iterable", datasets.Dataset.from_list(records).to_iterable_dataset()),
    ]:
        p = mtkit.profile(source, text=template, max_docs=None)
        assert py_counts(p, [1]) == want, kind


def test_save_to_disk_folders_read_by_the_cli_equal_their_jsonl(corpus, mtkit_bin, tmp_path):
    texts = corpus["texts"]
    ds = datasets.Dataset.from_dict({"text": texts, "n": list(range(len(texts)))})
    # Several Arrow files (datasets shards a save by size or by num_shards).
    ds.save_to_disk(str(tmp_path / "saved"), num_shards=3)
    assert len(list((tmp_path / "saved").glob("data-*.arrow"))) == 3
    for paths in ([tmp_path / "saved"], [tmp_path / "saved" / "data-*.arrow"]):
        cat = catalog_for(tmp_path / "cat.toml", "saved", paths)
        for args, want in ([(), corpus["sample"]], [("--max-docs", "all"), corpus["every"]]):
            got = cli_profile(mtkit_bin, tmp_path, "saved", cat, "--ngram", "2", *args)
            assert got == want, (paths, args)
    # And from Python as a folder of files.
    p = mtkit.profile(mtkit.Files(tmp_path / "saved"), ngram=2, max_docs=None, cache=False)
    assert py_counts(p, [1, 2]) == corpus["every"]


def test_a_dataset_dict_folder_is_refused_naming_its_splits(mtkit_bin, tmp_path):
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["a b", "c d"]}),
        "test": datasets.Dataset.from_dict({"text": ["e f"]}),
    })
    dd.save_to_disk(str(tmp_path / "dd"))
    cat = catalog_for(tmp_path / "cat.toml", "dd", [tmp_path / "dd"])
    r = run_cli(mtkit_bin, "profile", "dd", "--catalog", cat, "--no-cache", "-q", check=False)
    assert r.returncode != 0
    assert "train" in r.stderr and "test" in r.stderr and "DatasetDict" in r.stderr, r.stderr
    # The split's own folder reads.
    cat = catalog_for(tmp_path / "cat.toml", "dd", [tmp_path / "dd" / "train"])
    got = cli_profile(mtkit_bin, tmp_path, "dd", cat, "--max-docs", "all")
    assert sum(got[1].values()) == 4  # "a b" and "c d": two tokens each
    # From Python, a DatasetDict is refused the same way.
    with pytest.raises(mtkit.MtkitError, match="train"):
        mtkit.profile(dd)


def test_a_card_name_wins_over_a_folder_of_that_name(corpus, tmp_path, monkeypatch):
    """As on the command line, a bare name that is a card is the card, even with a folder of
    that name in the working directory (the repository's own docs/ folder once shadowed a
    card named `docs`); a path that is no card is still read as files."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.txt").write_text("nothing like the corpus\n")
    monkeypatch.chdir(tmp_path)
    p = mtkit.profile("docs", catalog=corpus["cat"], ngram=2, cache=False)
    assert py_counts(p, [1, 2]) == corpus["sample"]
    q = mtkit.profile("docs/other.txt", ngram=1, cache=False)
    assert q.totals["documents"] == 1
