"""mtkit in Python: token profiles, proximity and midtraining mixtures as polars DataFrames.

Every number comes from the same Rust library as the ``mtkit`` command line (the native
module ``mtkit._mtkit``); this layer only turns Python sources into batches and the
library's tables (Arrow IPC bytes) into ``polars.DataFrame``s.

    >>> import mtkit
    >>> mtkit.proximity("c4", ["starcoder", "codesearchnet"], "humaneval")   # doctest: +SKIP

A *source* is any of: a catalog card name (``"c4"``); corpus files (a path, glob or folder,
or :class:`Files`); a saved profile (``*.parquet`` written by ``mtkit profile -o`` or
:meth:`Profile.save`); a :class:`Profile`; an iterable of ``str`` or of dicts; a
``polars.Series`` of strings or a ``polars.DataFrame``; a Hugging Face ``datasets.Dataset`` or
``IterableDataset``. Records are rendered by ``text`` (a template such as
``"{question}\\n{answer}"``; default ``"{text}"``), sampled and cut exactly as a JSONL file of
the same records in the same order would be, so the numbers equal the CLI's.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence, Union

from . import _mtkit
from ._mtkit import MtkitError

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

__version__: str = _mtkit.__version__

__all__ = [
    "Files",
    "MtkitError",
    "Profile",
    "export",
    "load_profile",
    "merge_profiles",
    "metrics",
    "overlap",
    "profile",
    "proximity",
    "regress",
    "score",
    "select",
    "similarity_matrix",
    "suggest_mix",
    "tokenize",
]

#: Records pulled from a Python iterable per batch (the GIL is held only while one is read).
BATCH_RECORDS = 2048

# The CLI's defaults (the paper's measurement): 1000 documents sampled by seed 42, each cut
# to 10,000 characters and then to 512 tokens.
_DEFAULTS = dict(
    ngram=1,
    ngram_buckets=None,
    max_docs=1000,
    max_chars=10_000,
    max_tokens_per_doc=512,
    seed=42,
    strict=False,
    tokenizer=None,
    encoder="auto",
    shard=None,
)


def _polars():
    import polars as pl

    return pl


def _frame(ipc: bytes) -> "pl.DataFrame":
    return _polars().read_ipc_stream(io.BytesIO(ipc))


@dataclass(frozen=True)
class Files:
    """Corpus files named explicitly: paths, globs or folders (JSONL, JSON, CSV, parquet, text,
    Arrow and ``save_to_disk`` folders, optionally gzip/zstd compressed), as a catalog card's
    ``paths``. Needed where a plain string would mean something else (a ``.parquet`` string is
    read as a saved profile)."""

    paths: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]
    text: str = "{text}"
    name: str | None = None

    def path_list(self) -> list[str]:
        if isinstance(self.paths, (str, os.PathLike)):
            return [os.fspath(self.paths)]
        return [os.fspath(p) for p in self.paths]


class Profile:
    """A corpus's token profile: unigram (and n-gram) counts of its sampled documents.

    ``unigrams`` and ``ngrams(n)`` are ``polars.DataFrame``s sorted by token ids, ``totals``
    and ``meta`` plain dicts. Save with :meth:`save`; read back with :func:`load_profile`.
    """

    __slots__ = ("_native", "_unigrams", "_meta", "_totals")

    def __init__(self, native: "_mtkit.NativeProfile"):
        self._native = native
        self._unigrams = None
        self._meta = None
        self._totals = None

    @property
    def name(self) -> str:
        """The corpus name (a card's, a path, or the ``name=`` given)."""
        return self._native.name

    @property
    def unigrams(self) -> "pl.DataFrame":
        """Columns ``token`` (id, UInt32) and ``count`` (UInt64) of every token seen."""
        if self._unigrams is None:
            self._unigrams = _frame(self._native.frame(1))
        return self._unigrams

    def ngrams(self, n: int) -> "pl.DataFrame":
        """Order ``n``: ids ``t1``..``tn`` and ``count`` (exact), or ``bucket`` and ``count``
        (profiled with ``ngram_buckets``). ``ngrams(1)`` is :attr:`unigrams` with column
        ``token``."""
        if n == 1:
            return self.unigrams
        return _frame(self._native.frame(int(n)))

    @property
    def meta(self) -> dict:
        """What was counted and how: tokenizer and its SHA-256, sample, cuts, n-gram order."""
        if self._meta is None:
            self._meta = json.loads(self._native.meta_json())
        return dict(self._meta)

    @property
    def totals(self) -> dict:
        """``documents``, ``tokens``, ``bytes`` and ``skipped`` (bad records by kind)."""
        if self._totals is None:
            self._totals = json.loads(self._native.totals_json())
        return dict(self._totals)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the profile as ``mtkit profile -o`` does (parquet; whole or not at all)."""
        self._native.save(os.fspath(path))

    def __repr__(self) -> str:
        t = self.totals
        return (
            f"Profile({self.name!r}: {t['documents']:,} documents, {t['tokens']:,} tokens, "
            f"{len(self.unigrams):,} distinct tokens, n-grams to order {self.meta['ngram']})"
        )


def load_profile(path: Union[str, os.PathLike]) -> Profile:
    """Reads a profile saved by ``mtkit profile -o`` or :meth:`Profile.save`."""
    return Profile(_mtkit.load_profile(os.fspath(path)))


def metrics() -> list[str]:
    """The names of the similarity metrics (``paper`` first)."""
    return list(_mtkit.metric_names())


# --- progress -------------------------------------------------------------------------------


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class _Bars:
    """Draws the library's progress (reported every 50 ms) as tqdm bars, one per stage."""

    def __init__(self):
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self._stage = None
        self._bar = None

    def __call__(self, stage, label, done, total, unit, tokens, finished):
        if stage != self._stage:
            self.close()
            self._stage = stage
            if unit == "bytes":
                # Bytes read (a spilled profile's run merge): 1.2MB/8.4MB, MB/s.
                self._bar = self._tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, leave=False)
            else:
                self._bar = self._tqdm(total=total, desc=label, unit=f" {unit}", leave=False)
        bar = self._bar
        bar.n = done
        if unit == "docs":
            bar.set_postfix_str(f"{tokens:,} tokens", refresh=False)
        bar.refresh()
        if finished:
            self.close()

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _progress(progress: bool | None):
    if progress is False:
        return None
    if progress is None and not (sys.stderr.isatty() or _in_notebook()):
        return None
    try:
        return _Bars()
    except ImportError:
        if progress:
            raise MtkitError("progress=True needs tqdm (pip install tqdm)") from None
        return None


def _run_with_bars(progress, call):
    bars = _progress(progress)
    try:
        return call(bars)
    finally:
        if bars is not None:
            bars.close()


# --- sources --------------------------------------------------------------------------------


# Whole-number options: the smallest value each takes, and whether None ("no limit") is one.
_WHOLE_NUMBERS = dict(
    ngram=(1, False),
    ngram_buckets=(1, True),
    max_docs=(1, True),
    max_chars=(0, False),
    max_tokens_per_doc=(0, False),
    seed=(0, False),
)


def _checked_whole_numbers(o: dict) -> dict:
    """The sampling and counting options checked by name before the native layer sees them
    (it would say only "can't convert negative int to unsigned"); ``max_docs="all"`` is the
    CLI's spelling of None."""
    o = dict(o)
    if o.get("max_docs") == "all":
        o["max_docs"] = None
    for key, (least, none_ok) in _WHOLE_NUMBERS.items():
        v = o.get(key)
        if v is None and none_ok:
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            also = " or None" + (' (or "all")' if key == "max_docs" else "") if none_ok else ""
            raise TypeError(f"{key}= takes a whole number{also}, not {type(v).__name__} {v!r}")
        if v < least:
            raise ValueError(f"{key}= must be at least {least}, not {v}")
    return o


def _settings(opts: Mapping[str, Any], keep_document_counts: bool = False):
    unknown = set(opts) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    o = _checked_whole_numbers({**_DEFAULTS, **opts})
    if o["tokenizer"] is not None:
        o["tokenizer"] = os.fspath(o["tokenizer"])
    o["shard"] = _shard_text(o["shard"])
    return _mtkit.ProfileSettings(keep_document_counts=keep_document_counts, **o)


def _shard_text(shard) -> str | None:
    """``shard=``: ``(k, n)`` or the CLI's ``"k/n"`` (1-based: the records whose index is
    k-1 modulo n), or None for every record."""
    if shard is None or isinstance(shard, str):
        return shard
    if isinstance(shard, tuple) and len(shard) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in shard):
        return f"{shard[0]}/{shard[1]}"
    raise TypeError(f'shard= takes (k, n) or "k/n" (shard k of n, 1-based), not {type(shard).__name__} {shard!r}')


def _memory_bytes(memory) -> int | None:
    """``memory=``: bytes, or a size as ``--memory`` takes it ("512M", "2G"); a budget more
    than this process can hold is warned of, as the CLI warns."""
    if memory is None:
        return None
    if isinstance(memory, bool) or not isinstance(memory, (int, str)):
        raise TypeError(f'memory= takes a number of bytes or a size such as "2G", not {type(memory).__name__} {memory!r}')
    nbytes, warning = _mtkit.memory_budget(str(memory))
    if warning:
        warnings.warn(warning, ResourceWarning, stacklevel=3)
    return nbytes


def _is_hf_dataset(x) -> bool:
    return type(x).__module__.split(".")[0] == "datasets"


def _chunks(items: Iterable, n: int) -> Iterator[list]:
    batch = []
    for x in items:
        batch.append(x)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def _batches(source, fields: list[str]):
    """``source`` as an iterator of batches the native reader takes, and its default name."""
    pl = sys.modules.get("polars")
    if pl is not None and isinstance(source, pl.Series):
        if source.dtype != pl.String:
            raise MtkitError(
                f"a polars Series source must hold strings (Series {source.name!r} is {source.dtype})"
            )
        if fields != ["text"]:
            raise MtkitError("a Series of strings is rendered as {text}: pass a DataFrame for a template")
        n = BATCH_RECORDS
        return (source.slice(i, n).to_list() for i in range(0, len(source), n)), source.name or "series"
    if pl is not None and isinstance(source, pl.DataFrame):
        missing = [f for f in fields if f not in source.columns]
        if missing:
            raise MtkitError(
                f"the DataFrame has no column {', '.join(map(repr, missing))} "
                f"(columns: {', '.join(source.columns)}); name them with text='{{column}}'"
            )
        n = BATCH_RECORDS
        return (
            ({f: source[f].slice(i, n).to_list() for f in fields} for i in range(0, len(source), n)),
            "dataframe",
        )
    if _is_hf_dataset(source):
        kind = type(source).__name__
        if kind in ("DatasetDict", "IterableDatasetDict"):
            raise MtkitError(
                f"a {kind} holds splits {', '.join(source.keys())}: pass one, e.g. ds['train']"
            )
        columns = list(source.column_names or []) if source.column_names is not None else None
        if columns is not None:
            missing = [f for f in fields if f not in columns]
            if missing:
                raise MtkitError(
                    f"the dataset has no column {', '.join(map(repr, missing))} "
                    f"(columns: {', '.join(columns)}); name them with text='{{column}}'"
                )
            source = source.select_columns(fields)
        name = getattr(getattr(source, "info", None), "dataset_name", None) or "dataset"
        return source.iter(batch_size=BATCH_RECORDS), name
    if isinstance(source, (bytes, bytearray)):
        raise MtkitError("bytes are not a source: decode them to str first")
    if isinstance(source, Mapping):
        raise MtkitError(
            "a dict is not a source: pass a list of records, or a DataFrame of columns"
        )
    try:
        it = iter(source)
    except TypeError:
        raise MtkitError(
            f"cannot profile a {type(source).__name__}: expected a catalog name, corpus files, "
            "a saved profile, a Profile, an iterable of str or dict, a polars Series or "
            "DataFrame, or a Hugging Face Dataset"
        ) from None
    return _chunks(it, BATCH_RECORDS), "records"


def _looks_like_files(s: str) -> bool:
    return os.sep in s or "/" in s or any(c in s for c in "*?[") or os.path.exists(s)


def _catalog_paths(catalog) -> list[str]:
    """``catalog=``: one catalog file, a list of them, or None."""
    return [os.fspath(c) for c in ([catalog] if isinstance(catalog, (str, os.PathLike)) else (catalog or []))]


def _profile_of(
    source,
    *,
    settings,
    text: str | None,
    name: str | None,
    catalog,
    cache: bool,
    progress: bool | None,
    memory: int | None = None,
    tmp=None,
) -> Profile:
    if isinstance(source, Profile):
        return source
    catalogs = _catalog_paths(catalog)
    bounded = dict(memory=memory, tmp=None if tmp is None else os.fspath(tmp))
    if isinstance(source, Files):
        return _run_with_bars(
            progress,
            lambda bars: Profile(
                _mtkit.profile_corpus(
                    name or source.name or ", ".join(source.path_list()),
                    settings,
                    catalogs=catalogs,
                    files=source.path_list(),
                    text=text or source.text,
                    cache=cache,
                    progress=bars,
                    **bounded,
                )
            ),
        )
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, str):
        if source.endswith(".parquet") and os.path.isfile(source):
            return load_profile(source)
        files = [source] if _looks_like_files(source) else None
        return _run_with_bars(
            progress,
            lambda bars: Profile(
                _mtkit.profile_corpus(
                    name or source,
                    settings,
                    catalogs=catalogs,
                    files=files,
                    text=text,
                    cache=cache,
                    progress=bars,
                    **bounded,
                )
            ),
        )
    if memory is not None or tmp is not None:
        raise ValueError(
            "memory= and tmp= bound the counting of files and catalog cards; in-memory data is "
            "counted in memory (write it to a .jsonl file to count it within a budget)"
        )
    template = _template_of(source, text)
    fields = _mtkit.template_fields(template)
    batches, default_name = _batches(source, fields)
    prof = _run_with_bars(
        progress,
        lambda bars: Profile(
            _mtkit.profile_records(
                name or default_name, batches, template, settings, progress=bars
            )
        ),
    )
    _warn_if_sampled(source, prof)
    return prof


def _template_of(source, text: str | None) -> str:
    """The template that renders in-memory records: ``{text}`` by default; a bare column
    name of a DataFrame or dataset (``text="question"``) means that column, as
    ``text="{question}"`` does."""
    if not text:
        return "{text}"
    if "{" not in text:
        pl = sys.modules.get("polars")
        if pl is not None and isinstance(source, pl.DataFrame):
            columns = source.columns
        elif _is_hf_dataset(source):
            columns = list(getattr(source, "column_names", None) or [])
        else:
            columns = []
        if text in columns:
            return "{" + text + "}"
    return text


def _warn_if_sampled(source, prof: Profile) -> None:
    """In-memory data is sampled to ``max_docs`` as a file is; say so, since a user who
    hands over a list expects all of it."""
    limit = prof.meta.get("max_docs")
    try:
        n = len(source)
    except TypeError:
        return
    if limit is not None and n > limit:
        warnings.warn(
            f"profile of {prof.name}: {n} records in memory, {prof.totals['documents']} sampled "
            f"(max_docs={limit}); pass max_docs=None to profile all of them",
            stacklevel=4,  # the caller of mtkit.profile
        )


def profile(
    source,
    *,
    text: str | None = None,
    name: str | None = None,
    ngram: int = 1,
    ngram_buckets: int | None = None,
    max_docs: int | None = 1000,
    max_chars: int = 10_000,
    max_tokens_per_doc: int = 512,
    seed: int = 42,
    strict: bool = False,
    tokenizer: Union[str, os.PathLike, None] = None,
    encoder: str = "auto",
    catalog=None,
    cache: bool = True,
    keep_document_counts: bool = False,
    shard=None,
    memory: int | str | None = None,
    tmp: Union[str, os.PathLike, None] = None,
    progress: bool | None = None,
) -> Profile:
    """Profiles ``source`` (see the module's help for what a source may be).

    The options are ``mtkit profile``'s: ``max_docs`` documents sampled uniformly by ``seed``
    (``None`` or ``"all"``: all, in order; an in-memory source with more records than
    ``max_docs`` is sampled too, with a warning), each cut to ``max_chars`` characters and
    ``max_tokens_per_doc`` tokens (0: no cut), n-grams to order ``ngram`` (exact, or summed
    into ``ngram_buckets`` hashed buckets). ``ngram`` is 1 here, where ``mtkit profile``
    counts to 4 by default: unigrams are what proximity's metrics read (:func:`proximity`
    asks for 4 itself, as the CLI does); pass ``ngram=4`` for the CLI's profile. Bad records are skipped and counted in ``totals['skipped']``
    (``strict=True`` raises at the first). ``tokenizer`` is a tokenizer.json (default: Pythia's,
    installed by ``make setup``, or ``MTKIT_TOKENIZER``). Catalog cards and files go through
    the profile cache unless ``cache=False``; in-memory sources are never cached.
    ``keep_document_counts`` keeps per-document counts (for ``proximity(bootstrap=...)``).
    ``shard=(k, n)`` (or ``"k/n"``) profiles only the records whose index is k-1 modulo n, as
    ``--shard``; :func:`merge_profiles` adds the n shards into the whole's profile.
    ``memory`` (bytes, or ``"2G"``) and ``tmp`` count files and cards as ``mtkit profile
    --memory --tmp`` does: exact n-grams held to the budget, sorted runs spilled to a
    temporary folder in ``tmp`` (default: the cache folder) and merged; the profile is the
    same either way (the result is then loaded whole, so its n-grams must fit in memory).
    ``progress``: bars when a terminal or notebook is attached (``None``), always, or never.
    """
    settings = _settings(
        dict(
            ngram=ngram,
            ngram_buckets=ngram_buckets,
            max_docs=max_docs,
            max_chars=max_chars,
            max_tokens_per_doc=max_tokens_per_doc,
            seed=seed,
            strict=strict,
            tokenizer=tokenizer,
            encoder=encoder,
            shard=shard,
        ),
        keep_document_counts=keep_document_counts,
    )
    return _profile_of(
        source,
        settings=settings,
        text=text,
        name=name,
        catalog=catalog,
        cache=cache,
        progress=progress,
        memory=_memory_bytes(memory),
        tmp=tmp,
    )


def merge_profiles(parts, *, partial: bool = False) -> Profile:
    """``mtkit profile merge``: the profiles of the shards of one corpus (:class:`Profile`\ s,
    or parquet files written by ``mtkit profile --shard K/N -o FILE`` or :meth:`Profile.save`)
    merged into the whole's profile. Counts add exactly, so the merge of all n shards equals
    the profile of the whole corpus. Parts made with different settings are refused, naming
    which has which; parts that miss shards of their split are refused, naming them, unless
    ``partial=True`` (the result records the shards it covers).
    """
    profs = [p if isinstance(p, Profile) else load_profile(p) for p in _as_list(parts)]
    return Profile(_mtkit.merge_profiles([p._native for p in profs], partial))


def _as_list(x) -> list:
    if isinstance(x, (str, os.PathLike, Profile, Files)):
        return [x]
    return list(x)


def _profiles(sources, settings, *, catalog, cache, progress, text=None) -> list[Profile]:
    return [
        _profile_of(s, settings=settings, text=text, name=None, catalog=catalog, cache=cache, progress=progress)
        for s in sources
    ]


def proximity(
    pretrain,
    candidates,
    target,
    *,
    metric: str = "paper",
    all_metrics: bool = False,
    mix: float | None = None,
    mix_by: str = "tokens",
    bootstrap: int = 0,
    smoothing: float = 0.01,
    overlap=None,
    overlap_n: int = 13,
    catalog=None,
    cache: bool = True,
    progress: bool | None = None,
    **profile_options,
) -> "pl.DataFrame":
    """``mtkit proximity P M1 [M2 ...] T`` as a DataFrame with the columns of its ``--csv``:
    corpus, role, metric, sim, cosine, jaccard, jsd, pa (null where a row has none), then
    mix_token_weight with ``mix``, sim_lo, sim_hi, pa_lo, pa_hi with ``bootstrap``, and
    contaminated_share with ``overlap``.

    ``pretrain``, each of ``candidates`` (a list, or one source) and ``target`` are sources.
    PA(M→T) = sim(M,T) − sim(P,T). ``profile_options`` are :func:`profile`'s sampling options
    (``ngram`` defaults to 4 here, as in the CLI, and is read only by ``ngram-cosine``);
    profiles given as :class:`Profile` are used as they are.

    ``overlap`` (an evaluation set: a source, read whole), as the CLI's ``--overlap EVAL``:
    each corpus's share of documents, sampled and cut as its profile, that share an n-gram of
    ``overlap_n`` tokens with it (see :func:`overlap`), so that a PA that comes from copies of
    the target's evaluation data shows as such. It reads the documents, so no source may be a
    :class:`Profile` then.
    """
    names = metrics() if all_metrics else [metric]
    seed = profile_options.get("seed", _DEFAULTS["seed"])
    # As the CLI: n-grams to order 4 for the metrics that read them, unless told otherwise.
    profile_options.setdefault("ngram", 4)
    settings = _settings(profile_options).for_proximity(names, bootstrap > 0)
    sources = [pretrain, *_as_list(candidates), target]
    profs = _profiles(sources, settings, catalog=catalog, cache=cache, progress=progress)
    ipc = _run_with_bars(
        progress,
        lambda bars: _mtkit.proximity(
            [p._native for p in profs],
            names,
            mix=mix,
            mix_by=mix_by,
            bootstrap=bootstrap or None,
            seed=seed,
            smoothing=smoothing,
            progress=bars,
        ),
    )
    frame = _frame(ipc)
    if overlap is None:
        return frame
    scanned = _contaminated_shares(sources, overlap, overlap_n, settings, catalog, progress)
    # In the order of the sources; a mixture's row has no share.
    shares = dict(zip([p.name for p in profs], scanned))
    pl = _polars()
    return frame.with_columns(
        pl.col("corpus").replace_strict(shares, default=None, return_dtype=pl.Float64).alias("contaminated_share")
    )


def _corpus_spec(source, text: str | None, stack) -> tuple:
    """``source`` as (name, files, text) for the native reader: cards and files as they are,
    in-memory records (lists of str or dict, polars, Hugging Face datasets) written to a
    temporary JSON Lines file in order, so that records are read, rendered and counted as a
    file of them would be."""
    if isinstance(source, Files):
        return (source.name or ", ".join(source.path_list()), source.path_list(), text or source.text)
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, str):
        return (source, [source] if _looks_like_files(source) else None, text)
    if isinstance(source, Profile):
        raise MtkitError("a Profile holds counts, not documents: overlap needs the corpus itself")
    template = _template_of(source, text)
    batches, name = _batches(source, _mtkit.template_fields(template))
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="mtkit-overlap-"))
    path = os.path.join(tmp, f"{len(os.listdir(tmp))}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for batch in batches:
            if isinstance(batch, Mapping):  # columns
                keys = list(batch)
                rows = (dict(zip(keys, vals)) for vals in zip(*(batch[k] for k in keys)))
            else:
                # A None record has no text: skipped as missing_field, as profile() counts it.
                rows = ({"text": r} if isinstance(r, str) else ({} if r is None else r) for r in batch)
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False, default=str))
                f.write("\n")
    return (name, [path], template)


def overlap(
    corpora,
    against,
    *,
    n: int = 13,
    ignore_common: float | None = None,
    details: bool = False,
    text: str | None = None,
    against_text: str | None = None,
    max_docs: int | None = None,
    max_chars: int = 0,
    max_tokens_per_doc: int = 0,
    seed: int = 42,
    strict: bool = False,
    tokenizer: Union[str, os.PathLike, None] = None,
    encoder: str = "auto",
    catalog=None,
    progress: bool | None = None,
):
    """``mtkit overlap CORPUS... --against EVAL`` as a DataFrame with the columns of its
    ``--csv``: corpus, documents, contaminated_documents, contaminated_share,
    eval_items_hit, eval_items_share, matched_ngrams. With ``details=True``, a pair
    ``(table, pairs)``: pairs has one row per (document, EVAL item) sharing an n-gram,
    corpus, record, eval_record, shared_ngrams, longest_span.

    ``corpora`` (a list, or one source) and ``against`` are sources (not profiles: the
    documents are scanned), rendered by ``text`` and ``against_text``. n-grams are ``n`` token
    ids of the tokenizer; a match has equal ids. Whole documents of every record by default,
    as the CLI; ``max_docs``, ``max_chars`` and ``max_tokens_per_doc`` cut both sides alike.
    ``ignore_common``: drop n-grams found in more than this share of EVAL's items.
    """
    catalogs = _catalog_paths(catalog)
    settings = _reading_settings(max_docs, max_chars, max_tokens_per_doc, seed, strict, tokenizer, encoder)
    with contextlib.ExitStack() as stack:
        specs = [_corpus_spec(c, text, stack) for c in _as_list(corpora)]
        eval_spec = _corpus_spec(against, against_text, stack)
        table, pairs = _run_with_bars(
            progress,
            lambda bars: _mtkit.overlap(
                specs,
                eval_spec,
                n,
                settings,
                ignore_common=ignore_common,
                details=details,
                catalogs=catalogs,
                progress=bars,
            ),
        )
    if details:
        return _frame(table), _frame(pairs)
    return _frame(table)


def _contaminated_shares(sources, against, n, settings, catalog, progress) -> list:
    """proximity's ``overlap=``: each source's contaminated share, its documents sampled and
    cut as its profile (``settings``), against every item of ``against``, whole."""
    catalogs = _catalog_paths(catalog)
    with contextlib.ExitStack() as stack:
        for s in sources:
            if isinstance(s, Profile):
                raise MtkitError(
                    f"overlap= reads each corpus's documents: {s.name} is a Profile; give the corpus itself"
                )
        specs = [_corpus_spec(s, None, stack) for s in sources]
        eval_spec = _corpus_spec(against, None, stack)
        return _run_with_bars(
            progress,
            lambda bars: _mtkit.contaminated_shares(
                specs, eval_spec, n, settings, catalogs=catalogs, progress=bars
            ),
        )


def _reading_settings(max_docs, max_chars, max_tokens_per_doc, seed, strict, tokenizer, encoder):
    """The settings of the commands that read whole documents by default (score, select,
    overlap): every record (``max_docs=None``), no cuts (0)."""
    return _settings(
        dict(
            max_docs=max_docs,
            max_chars=max_chars,
            max_tokens_per_doc=max_tokens_per_doc,
            seed=seed,
            strict=strict,
            tokenizer=tokenizer,
            encoder=encoder,
        )
    )


def tokenize(
    corpora,
    output: Union[str, os.PathLike],
    *,
    format: str = "mtkit",
    val_docs: int | None = None,
    text: str | None = None,
    max_docs: int | str | None = 1000,
    seed: int = 42,
    strict: bool = False,
    olmo_file_size: str = "1G",
    litdata_chunk_tokens: int = 2049 * 8192,
    exclude_overlap=None,
    overlap_n: int = 13,
    tokenizer: Union[str, os.PathLike, None] = None,
    encoder: str = "auto",
    catalog=None,
    progress: bool | None = None,
) -> "pl.DataFrame":
    """``mtkit tokenize CORPUS... -o OUTPUT`` from Python: each corpus's token files in
    ``OUTPUT/NAME/``, the same bytes as the CLI writes (one library function serves both),
    and its summary table as a DataFrame: corpus, train_docs, train_tokens, val_docs,
    val_tokens, has_prompt, prompt_mask_dropped, skipped, left_out_by_overlap.

    ``format``: ``mtkit`` (the trainer's own files, with ``val_docs`` validation documents,
    100 by default), ``megatron``, ``olmo-core`` or ``litdata`` (no validation split; token
    ids only, so an SFT card's prompt mask is dropped and ``prompt_mask_dropped`` says so).
    The sampling is the CLI's: ``max_docs`` documents by ``seed`` (``None`` or ``"all"``: every
    document, in order), whole documents. ``olmo_file_size`` (``"1G"``, ``"512M"``) and
    ``litdata_chunk_tokens`` size those formats' files. ``exclude_overlap`` (an evaluation set)
    leaves out every document sharing an ``overlap_n``-token n-gram with it. ``corpora`` are
    cards, files or in-memory records, as for :func:`overlap`.
    """
    catalogs = _catalog_paths(catalog)
    settings = _reading_settings(max_docs, 0, 0, seed, strict, tokenizer, encoder)
    with contextlib.ExitStack() as stack:
        specs = [_corpus_spec(c, text, stack) for c in _as_list(corpora)]
        eval_spec = None if exclude_overlap is None else _corpus_spec(exclude_overlap, None, stack)
        summaries = _run_with_bars(
            progress,
            lambda bars: _mtkit.tokenize(
                specs,
                os.fspath(output),
                format,
                settings,
                val_docs=val_docs,
                olmo_file_size=str(olmo_file_size),
                litdata_chunk_tokens=litdata_chunk_tokens,
                exclude_overlap=eval_spec,
                overlap_n=overlap_n,
                catalogs=catalogs,
                progress=bars,
            ),
        )
    rows = json.loads(summaries)
    columns = ["corpus", "train_docs", "train_tokens", "val_docs", "val_tokens", "has_prompt",
               "prompt_mask_dropped", "left_out_by_overlap"]
    data = {c: [r[c] for r in rows] for c in columns}
    data["skipped"] = [sum(r["skipped"].values()) for r in rows]
    return _polars().DataFrame(data).select(columns[:7] + ["skipped", "left_out_by_overlap"])


def score(
    pool,
    target,
    *,
    ngram: int = 2,
    lambda_: float = 0.5,
    text: str | None = None,
    target_text: str | None = None,
    max_docs: int | None = None,
    max_chars: int = 0,
    max_tokens_per_doc: int = 0,
    seed: int = 42,
    strict: bool = False,
    tokenizer: Union[str, os.PathLike, None] = None,
    encoder: str = "auto",
    catalog=None,
    progress: bool | None = None,
) -> "pl.DataFrame":
    """``mtkit score POOL... --target T`` as a DataFrame with the columns of its ``-o``:
    corpus, record, tokens, log_weight, log_weight_per_token, one row per pool document.

    log_weight(x) = sum over orders n = 1..``ngram`` and over x's n-grams g of
    ln(``lambda_``·p_T(g)/p_R(g) + 1 − ``lambda_``), p_T the target's n-gram distribution and
    p_R the whole pool's (see ``mtkit score --help``). ``pool`` (a list, or one source) and
    ``target`` are sources other than profiles; whole documents of every record by default.
    """
    settings = _reading_settings(max_docs, max_chars, max_tokens_per_doc, seed, strict, tokenizer, encoder)
    with contextlib.ExitStack() as stack:
        specs = [_corpus_spec(c, text, stack) for c in _as_list(pool)]
        target_spec = _corpus_spec(target, target_text, stack)
        ipc = _run_with_bars(
            progress,
            lambda bars: _mtkit.score(
                specs, target_spec, settings, ngram=ngram, lambda_=lambda_,
                catalogs=_catalog_paths(catalog), progress=bars,
            ),
        )
    return _frame(ipc)


def select(
    pool,
    target,
    *,
    n: int | None = None,
    tokens: int | None = None,
    fraction: float | None = None,
    weight: str = "per-token",
    length_norm: float = 128.0,
    top_k: bool = False,
    seed: int = 0,
    max_share: Mapping[str, float] | None = None,
    min_tokens: int = 1,
    pretrain=None,
    exclude_overlap=None,
    overlap_n: int = 13,
    dedup: bool = False,
    ngram: int = 2,
    lambda_: float = 0.5,
    text: str | None = None,
    target_text: str | None = None,
    max_docs: int | None = None,
    max_chars: int = 0,
    max_tokens_per_doc: int = 0,
    sample_seed: int = 42,
    strict: bool = False,
    tokenizer: Union[str, os.PathLike, None] = None,
    encoder: str = "auto",
    catalog=None,
    progress: bool | None = None,
):
    """``mtkit select POOL... --target T`` : returns ``(selection, report)``, the selection a
    DataFrame with the columns of its output (corpus, record, log_weight, text; descending
    key order) and the report a dict with the figures of its ``--report`` file (sizes,
    sources, sim/PA of the selection, a random draw and the pool, KL reduction, effective
    sample size, documents left out by ``exclude_overlap``).

    Exactly one budget: ``n`` documents, ``tokens``, or a ``fraction`` of the pool's
    documents. The draw is seeded Gumbel top-k on ``length_norm``·log_weight_per_token
    (``weight="per-token"``) or log_weight (``weight="sum"``), ``top_k=True`` without the
    noise; ``max_share={"c4": 0.5}`` caps sources; ``dedup=True`` keeps one copy of
    documents with identical token ids. The same inputs and seed give the CLI's
    selection, row for row.
    """
    settings = _reading_settings(max_docs, max_chars, max_tokens_per_doc, sample_seed, strict, tokenizer, encoder)
    with contextlib.ExitStack() as stack:
        specs = [_corpus_spec(c, text, stack) for c in _as_list(pool)]
        target_spec = _corpus_spec(target, target_text, stack)
        pretrain_spec = None if pretrain is None else _corpus_spec(pretrain, None, stack)
        eval_spec = None if exclude_overlap is None else _corpus_spec(exclude_overlap, None, stack)
        ipc, report = _run_with_bars(
            progress,
            lambda bars: _mtkit.select(
                specs, target_spec, settings, docs=n, tokens=tokens, fraction=fraction,
                weight=weight, length_norm=length_norm, top_k=top_k, seed=seed,
                max_share=list((max_share or {}).items()), min_tokens=min_tokens,
                pretrain=pretrain_spec, exclude_overlap=eval_spec, overlap_n=overlap_n, dedup=dedup,
                ngram=ngram, lambda_=lambda_, catalogs=_catalog_paths(catalog), progress=bars,
            ),
        )
    return _frame(ipc), json.loads(report)


def similarity_matrix(
    corpora,
    *,
    metric: str = "paper",
    smoothing: float = 0.01,
    catalog=None,
    cache: bool = True,
    progress: bool | None = None,
    **profile_options,
) -> "pl.DataFrame":
    """``mtkit proximity --matrix``: a ``corpus`` column and one column per corpus, entry =
    sim(row, column) (the column plays the target)."""
    profile_options.setdefault("ngram", 4)
    settings = _settings(profile_options).for_proximity([metric], False)
    profs = _profiles(_as_list(corpora), settings, catalog=catalog, cache=cache, progress=progress)
    return _frame(_mtkit.similarity_matrix([p._native for p in profs], metric, smoothing))


def _name_of(source, prof: Profile) -> str:
    if isinstance(source, str):
        return source
    return prof.name


def suggest_mix(
    *,
    pretrain,
    candidates,
    target,
    total_steps: int = 61_035,
    tokens_per_step: int = 2_097_152,
    available: Mapping[str, float] | None = None,
    max_repeat: float = 4.0,
    min_general: float = 0.2,
    min_weight: float = 0.01,
    start: Union[float, str] = "auto",
    top: int = 5,
    metric: str = "paper",
    fit=None,
    catalog=None,
    cache: bool = True,
    progress: bool | None = None,
    **profile_options,
) -> "pl.DataFrame":
    """``mtkit suggest-mix``: a DataFrame of proposals, best first: ``rank``, ``start_step``,
    ``start_fraction``, one column of token weights per source (P first), ``sim``, ``pa``,
    ``distance_from_p``, ``pareto``, ``max_specialized`` (with ``fit``: ``predicted_ri``,
    ``ri_lo``, ``ri_hi``), and ``proposal``, which :func:`export` reads.

    ``available`` maps source names to their tokens (default: the card's size, else the
    profile's tokens); ``fit`` is a runs table (path or DataFrame with ``pa`` and ``ri``). The
    search's notes (estimated sizes, absent candidates) are issued as warnings.
    """
    settings = _settings(profile_options).unigrams_only()
    sources = [pretrain, *_as_list(candidates), target]
    profs = _profiles(sources, settings, catalog=catalog, cache=cache, progress=progress)
    names = [_name_of(s, p) for s, p in zip(sources, profs)]
    avail = [f"{k}={float(v)!r}" for k, v in (available or {}).items()]
    with _csv_file(fit) as fit_path:
        ipc, notes = _mtkit.suggest_mix(
            names,
            [p._native for p in profs],
            total_steps=total_steps,
            tokens_per_step=tokens_per_step,
            max_repeat=max_repeat,
            min_general=min_general,
            min_weight=min_weight,
            start=str(start),
            available=avail,
            metric=metric,
            fit=fit_path,
            top=top,
        )
    for note in notes:
        warnings.warn(f"suggest_mix: {note}", stacklevel=2)
    return _frame(ipc)


class _csv_file:
    """A runs table as a CSV path for the library: a path as is, a DataFrame written to a
    temporary file (removed afterwards)."""

    def __init__(self, table):
        self.table = table
        self.tmp = None

    def __enter__(self):
        t = self.table
        if t is None:
            return None
        if isinstance(t, (str, os.PathLike)):
            return os.fspath(t)
        fd, self.tmp = tempfile.mkstemp(suffix=".csv", prefix="mtkit-runs-")
        with os.fdopen(fd, "wb") as f:
            f.write(_csv_bytes(t))
        return self.tmp

    def __exit__(self, *exc):
        if self.tmp is not None:
            os.unlink(self.tmp)


def _csv_bytes(table) -> bytes:
    pl = sys.modules.get("polars")
    if pl is not None and isinstance(table, pl.DataFrame):
        return table.write_csv().encode()
    if type(table).__module__.split(".")[0] == "pandas":
        return table.to_csv(index=False).encode()
    raise MtkitError(f"expected a CSV path or a DataFrame, got {type(table).__name__}")


def export(
    proposals,
    format: str = "mtkit",
    *,
    rank: int | None = None,
    preset: str = "pythia-70m",
    seq_len: int = 2048,
    data: Union[str, os.PathLike, None] = None,
    lr: float = 3e-4,
    sft_epochs: float = 4.0,
) -> str:
    """A proposal as a trainer config: the text ``suggest-mix --emit FORMAT`` prints
    (``mtkit``, ``olmo-core``, ``megatron``, ``hf`` or ``litgpt``).

    ``proposals`` is :func:`suggest_mix`'s DataFrame (the row of ``rank``, default the first),
    one row of it (``df.row(i, named=True)``), or its ``proposal`` string. ``data`` is the
    folder of ``mtkit tokenize`` output the config names (see ``suggest-mix --data``).
    """
    pl = sys.modules.get("polars")
    if isinstance(proposals, str):
        text = proposals
    elif isinstance(proposals, Mapping):
        text = proposals["proposal"]
    elif pl is not None and isinstance(proposals, pl.DataFrame):
        if "proposal" not in proposals.columns or len(proposals) == 0:
            raise MtkitError("export takes suggest_mix's DataFrame (with its `proposal` column)")
        if rank is None:
            text = proposals["proposal"][0]
        else:
            rows = proposals.filter(pl.col("rank") == rank)
            if len(rows) == 0:
                raise MtkitError(f"no proposal of rank {rank} (ranks: {proposals['rank'].to_list()})")
            text = rows["proposal"][0]
    else:
        raise MtkitError(f"export takes suggest_mix's DataFrame, a row of it or its proposal, not {type(proposals).__name__}")
    return _mtkit.export(
        text,
        format,
        preset=preset,
        seq_len=seq_len,
        data=None if data is None else os.fspath(data),
        lr=lr,
        sft_epochs=sft_epochs,
    )


def regress(
    runs,
    x: str = "pa",
    y: str = "ri",
    *,
    by: str | None = None,
    bootstrap: int = 1000,
    seed: int = 42,
) -> "pl.DataFrame":
    """``mtkit report regress``: OLS of ``y`` on ``x`` (slope and intercept with standard
    errors), Pearson r with its two-sided p-value and bootstrap 95% interval, Spearman ρ, R²
    and n; a row ``all`` and, with ``by``, one per value of that column. ``runs`` is a CSV path
    or a DataFrame (polars or pandas). Rows with an empty x or y are left out (with a warning).
    """
    if isinstance(runs, (str, os.PathLike)):
        label = os.fspath(runs)
        try:
            data = Path(label).read_bytes()
        except OSError as e:
            raise MtkitError(f"cannot read {label}: {e.strerror}") from None
    else:
        label = "<DataFrame>"
        data = _csv_bytes(runs)
    ipc, left_out = _mtkit.regress(data, label, x, y, by=by, bootstrap=bootstrap, seed=seed)
    if left_out:
        warnings.warn(
            f"regress: {left_out} rows with an empty `{x}` or `{y}` were left out (base runs have no PA)",
            stacklevel=2,
        )
    return _frame(ipc)
