"""Errors raise as Python exceptions with the CLI's messages (file, line or record, field);
bad records are skipped and counted unless strict; a Python error inside a source is raised
as itself."""

import gzip

import pytest

import mtkit
from conftest import run_cli


def test_unknown_corpus_names_the_close_ones():
    with pytest.raises(mtkit.MtkitError, match=r"unknown corpus `demo-wbe`.*did you mean `demo-web`"):
        mtkit.profile("demo-wbe")


def test_a_bad_line_is_named_with_its_file_and_line(tmp_path, mtkit_bin):
    f = tmp_path / "bad.jsonl.gz"
    with gzip.open(f, "wt") as g:
        g.write('{"text": "fine"}\n{"text": broken\n{"text": "also fine"}\n')
    # Lenient: skipped and counted, as the CLI does.
    p = mtkit.profile(mtkit.Files(f), max_docs=None, cache=False)
    assert p.totals["documents"] == 2
    assert sum(p.totals["skipped"].values()) == 1
    with pytest.raises(mtkit.MtkitError) as e:
        mtkit.profile(mtkit.Files(f), strict=True, cache=False)
    msg = str(e.value)
    assert "bad.jsonl.gz" in msg and "line 2" in msg, msg
    # The CLI's message, in Python's words: the keyword where the CLI names its flag.
    assert msg.endswith("(strict=True stops at the first bad record)"), msg
    cat = tmp_path / "cat.toml"
    cat.write_text(f'[datasets.bad]\nrole = "target"\npaths = ["{f}"]\n')
    r = run_cli(mtkit_bin, "profile", "bad", "--catalog", cat, "--strict", "--no-cache", "-q", check=False)
    cli = msg.replace("strict=True", "--strict")
    assert r.returncode != 0 and cli in r.stderr, (cli, r.stderr)


def test_records_name_their_index_and_field():
    with pytest.raises(mtkit.MtkitError, match=r"record 3: expected a str or a dict, got int"):
        mtkit.profile(["a", "b", 7])
    recs = [{"question": "q1", "answer": "a1"}, {"question": "q2"}]
    p = mtkit.profile(recs, text="{question} {answer}")
    assert p.totals["documents"] == 1 and sum(p.totals["skipped"].values()) == 1
    with pytest.raises(mtkit.MtkitError, match=r"record 2.*answer"):
        mtkit.profile(recs, text="{question} {answer}", strict=True)
    with pytest.raises(mtkit.MtkitError, match=r"record 1: field `x`.*object"):
        mtkit.profile([{"x": object()}], text="{x}")
    with pytest.raises(mtkit.MtkitError, match="unclosed"):
        mtkit.profile(["a"], text="{text")


def test_a_python_error_in_the_source_is_raised_as_itself():
    def texts():
        yield "one"
        yield "two"
        raise ValueError("the source broke at record 3")

    with pytest.raises(ValueError, match="the source broke at record 3"):
        mtkit.profile(texts(), max_docs=None)


def test_wrong_arguments_are_refused_clearly():
    with pytest.raises(mtkit.MtkitError, match="at least three corpora"):
        mtkit.proximity("demo-web", [], "demo-docstring")
    with pytest.raises(mtkit.MtkitError, match="unknown metric `cosin`"):
        mtkit.proximity("demo-web", ["demo-code"], "demo-docstring", metric="cosin")
    with pytest.raises(mtkit.MtkitError, match="bootstrap"):
        mtkit.proximity("demo-web", ["demo-code"], "demo-docstring", bootstrap=10**7)
    with pytest.raises(mtkit.MtkitError, match="unknown export `toml`"):
        mtkit.export('{"x": 1}', "toml")
    with pytest.raises(mtkit.MtkitError, match="not a proposal"):
        mtkit.export('{"x": 1}', "mtkit")
    with pytest.raises(TypeError, match="unknown option"):
        mtkit.proximity("demo-web", ["demo-code"], "demo-docstring", max_doc=3)
    with pytest.raises(mtkit.MtkitError, match="cannot profile a int"):
        mtkit.profile(5)
    with pytest.raises(mtkit.MtkitError, match="holds orders 1 to 1"):
        mtkit.profile(["a b c"]).ngrams(2)
    with pytest.raises(mtkit.MtkitError, match="no column 'body'"):
        import polars as pl

        mtkit.profile(pl.DataFrame({"text": ["a"]}), text="{body}")


def test_whole_number_options_are_checked_by_name():
    with pytest.raises(TypeError, match=r"max_docs= takes a whole number or None \(or \"all\"\), not str 'ten'"):
        mtkit.profile(["a"], max_docs="ten")
    with pytest.raises(ValueError, match="max_chars= must be at least 0, not -1"):
        mtkit.profile(["a"], max_chars=-1)
    with pytest.raises(TypeError, match="seed= takes a whole number, not float 1.5"):
        mtkit.profile(["a"], seed=1.5)
    with pytest.raises(ValueError, match="ngram= must be at least 1, not 0"):
        mtkit.proximity("demo-web", ["demo-code"], "demo-docstring", ngram=0)
    # The CLI's spelling of "every document".
    every = mtkit.profile([f"document {i}" for i in range(1500)], max_docs="all", progress=False)
    assert every.totals["documents"] == 1500


def test_in_memory_data_sampled_by_max_docs_says_so():
    import warnings

    texts = [f"document {i}" for i in range(1500)]
    with pytest.warns(UserWarning, match=r"1500 records in memory, 1000 sampled \(max_docs=1000\)"):
        mtkit.profile(texts, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mtkit.profile(texts, max_docs=None, progress=False)
        mtkit.profile(texts[:1000], progress=False)


def test_none_and_nulls_are_skipped_and_counted_as_the_cli_does():
    import polars as pl

    p = mtkit.profile(["one two", None, "three"], max_docs=None, progress=False)
    assert p.totals["documents"] == 2 and p.totals["skipped"] == {"missing_field": 1}
    s = mtkit.profile(pl.Series("text", ["one two", None, "three", None]), max_docs=None, progress=False)
    assert s.totals["documents"] == 2 and s.totals["skipped"] == {"missing_field": 2}
    with pytest.raises(mtkit.MtkitError, match=r"record 2.*text"):
        mtkit.profile(["one two", None], max_docs=None, strict=True, progress=False)


def test_a_bare_column_name_renders_that_column():
    import polars as pl

    df = pl.DataFrame({"question": ["one two", "three"], "other": ["x", "y"]})
    bare = mtkit.profile(df, text="question", max_docs=None, progress=False)
    braced = mtkit.profile(df, text="{question}", max_docs=None, progress=False)
    assert bare.totals == braced.totals and bare.unigrams.equals(braced.unigrams)
    assert bare.totals["documents"] == 2


def test_messages_name_python_keywords_not_cli_flags():
    # The library's messages name the CLI's flags; from Python they name the keywords.
    with pytest.raises(mtkit.MtkitError, match=r"add cards with catalog=FILE\)") as e:
        mtkit.profile("no-such-card")
    assert "--catalog" not in str(e.value)
    with pytest.raises(mtkit.MtkitError, match=r"^ngram= must be between 1 and 8, got 9$"):
        mtkit.profile(["a b"], ngram=9)
    with pytest.raises(mtkit.MtkitError, match=r'shard= "3/2": K must be between 1 and N'):
        mtkit.profile("demo-web", shard="3/2")
    with pytest.raises(mtkit.MtkitError, match=r"in-memory records take no shard="):
        mtkit.profile(["a b"], shard=(1, 2))
    with pytest.raises(mtkit.MtkitError, match=r"^memory=: not a size: \"1X\""):
        mtkit.profile("demo-web", memory="1X")
    with pytest.raises(TypeError, match=r"shard= takes \(k, n\) or \"k/n\""):
        mtkit.profile("demo-web", shard=[1, 2])
    with pytest.raises(ValueError, match="memory= and tmp= bound the counting of files"):
        mtkit.profile(["a b"], memory="1G")


def test_a_memory_budget_above_what_the_process_can_hold_is_warned_of():
    # As `mtkit profile --memory 100T` warns (no machine of this kind has 100 TiB).
    with pytest.warns(ResourceWarning, match=r"memory= 100 TiB is more than this process can hold"):
        p = mtkit.profile("demo-web", memory="100T", cache=False, progress=False)
    assert p.totals["documents"] == 1000
