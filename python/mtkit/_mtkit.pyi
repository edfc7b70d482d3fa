# Type stubs of the native module (python/src/lib.rs). Internal: use the functions of `mtkit`.
from os import PathLike
from typing import Any, Callable, Iterator, Optional, Sequence

__version__: str

class MtkitError(Exception):
    """An error of mtkit's, with the command line's message (file, line or record, field)."""

Progress = Callable[[int, str, int, Optional[int], str, int, bool], None]

class NativeProfile:
    @property
    def name(self) -> str: ...
    @property
    def card_tokens(self) -> Optional[int]: ...
    @property
    def has_document_counts(self) -> bool: ...
    def frame(self, n: int) -> bytes: ...
    def meta_json(self) -> str: ...
    def totals_json(self) -> str: ...
    def save(self, path: str | PathLike[str]) -> None: ...

class ProfileSettings:
    def __init__(
        self,
        *,
        ngram: int,
        ngram_buckets: Optional[int],
        max_docs: Optional[int],
        max_chars: int,
        max_tokens_per_doc: int,
        seed: int,
        strict: bool,
        keep_document_counts: bool,
        tokenizer: Optional[str],
        encoder: str,
        shard: Optional[str] = None,
    ) -> None: ...
    def for_proximity(self, metrics: Sequence[str], bootstrap: bool) -> ProfileSettings: ...
    def unigrams_only(self) -> ProfileSettings: ...

def profile_corpus(
    name: str,
    settings: ProfileSettings,
    *,
    catalogs: Sequence[str],
    files: Optional[Sequence[str]],
    text: Optional[str],
    cache: bool,
    progress: Optional[Progress],
    memory: Optional[int] = None,
    tmp: Optional[str] = None,
) -> NativeProfile: ...
def memory_budget(memory: str) -> tuple[int, Optional[str]]: ...
def merge_profiles(parts: Sequence[NativeProfile], partial: bool) -> NativeProfile: ...
def profile_records(
    name: str,
    batches: Iterator[Any],
    template: str,
    settings: ProfileSettings,
    *,
    progress: Optional[Progress],
) -> NativeProfile: ...
def load_profile(path: str | PathLike[str]) -> NativeProfile: ...
def proximity(
    profiles: Sequence[NativeProfile],
    metrics: Sequence[str],
    *,
    mix: Optional[float],
    mix_by: str,
    bootstrap: Optional[int],
    seed: int,
    smoothing: float,
    progress: Optional[Progress],
) -> bytes: ...
def similarity_matrix(profiles: Sequence[NativeProfile], metric: str, smoothing: float) -> bytes: ...
def suggest_mix(
    names: Sequence[str],
    profiles: Sequence[NativeProfile],
    *,
    total_steps: int,
    tokens_per_step: int,
    max_repeat: float,
    min_general: float,
    min_weight: float,
    start: str,
    available: Sequence[str],
    metric: str,
    fit: Optional[str],
    top: int,
) -> tuple[bytes, list[str]]: ...
def export(
    proposal: str,
    format: str,
    *,
    preset: str,
    seq_len: int,
    data: Optional[str],
    lr: float,
    sft_epochs: float,
) -> str: ...
def regress(
    csv: bytes,
    label: str,
    x: str,
    y: str,
    *,
    by: Optional[str],
    bootstrap: int,
    seed: int,
) -> tuple[bytes, int]: ...
def overlap(
    corpora: list[tuple[str, Optional[list[str]], Optional[str]]],
    against: tuple[str, Optional[list[str]], Optional[str]],
    n: int,
    settings: ProfileSettings,
    *,
    ignore_common: Optional[float],
    details: bool,
    catalogs: list[str],
    progress: Optional[Any],
) -> tuple[bytes, Optional[bytes]]: ...
def contaminated_shares(
    corpora: list[tuple[str, Optional[list[str]], Optional[str]]],
    against: tuple[str, Optional[list[str]], Optional[str]],
    n: int,
    settings: ProfileSettings,
    *,
    catalogs: list[str],
    progress: Optional[Any],
) -> list[float]: ...
def tokenize(
    corpora: list[tuple[str, Optional[list[str]], Optional[str]]],
    output: str,
    format: str,
    settings: ProfileSettings,
    *,
    val_docs: Optional[int],
    olmo_file_size: str,
    litdata_chunk_tokens: int,
    exclude_overlap: Optional[tuple[str, Optional[list[str]], Optional[str]]],
    overlap_n: int,
    catalogs: list[str],
    progress: Optional[Any],
) -> str: ...
def score(
    pool: list[tuple[str, Optional[list[str]], Optional[str]]],
    target: tuple[str, Optional[list[str]], Optional[str]],
    settings: ProfileSettings,
    *,
    ngram: int,
    lambda_: float,
    catalogs: list[str],
    progress: Optional[Any],
) -> bytes: ...
def select(
    pool: list[tuple[str, Optional[list[str]], Optional[str]]],
    target: tuple[str, Optional[list[str]], Optional[str]],
    settings: ProfileSettings,
    *,
    docs: Optional[int],
    tokens: Optional[int],
    fraction: Optional[float],
    weight: str,
    length_norm: float,
    top_k: bool,
    seed: int,
    max_share: list[tuple[str, float]],
    min_tokens: int,
    pretrain: Optional[tuple[str, Optional[list[str]], Optional[str]]],
    exclude_overlap: Optional[tuple[str, Optional[list[str]], Optional[str]]],
    overlap_n: int,
    dedup: bool,
    ngram: int,
    lambda_: float,
    catalogs: list[str],
    progress: Optional[Any],
) -> tuple[bytes, str]: ...
def template_fields(template: str) -> list[str]: ...
def metric_names() -> list[str]: ...
def default_tokenizer_path() -> str: ...
