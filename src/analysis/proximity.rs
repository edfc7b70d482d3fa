//! Similarity between token distributions and the proximity advantage.
//!
//! All metrics are oriented so that higher means closer, and are computed as `sim(x, t)`: `x`
//! is the corpus being scored (pretraining or candidate), `t` the target. The proximity
//! advantage of a candidate `M` for target `T` over pretraining corpus `P` is
//! `PA(M→T) = sim(M, T) − sim(P, T)` (shared/docs/paper.md §2).
//!
//! | metric | definition (p = x's unigram frequencies, q = t's) |
//! |---|---|
//! | `paper` | 0.4·cosine + 0.3·jaccard + 0.3/(1 + JSD): the authors' token similarity |
//! | `cosine` | p·q / (‖p‖‖q‖) |
//! | `jaccard` | \|supp p ∩ supp q\| / \|supp p ∪ supp q\| over ids with count > 0 |
//! | `jsd` | −JSD(p, q), JSD = ½KL(p‖m) + ½KL(q‖m), m = (p+q)/2, natural log, 0·log 0 = 0 |
//! | `js-sim` | 1 / (1 + JSD) |
//! | `hellinger` | 1 − H, H = ‖√p − √q‖₂ / √2 |
//! | `cross-entropy` | −H(q, p̃) = Σ q log p̃ (nats), p̃ = x's counts smoothed |
//! | `kl` | −KL(q ‖ p̃); its PA is DSIR's KL reduction KL(q‖P̃) − KL(q‖M̃) |
//! | `ngram-cosine` | mean over orders 1..N of the cosine between n-gram count vectors |
//!
//! Smoothing (cross-entropy, kl) is additive on the scored corpus's counts:
//! p̃ᵢ = (cᵢ + α) / (N + α·V), V the tokenizer's vocabulary size, α = `--smoothing`.

use anyhow::{bail, Result};
use serde::Serialize;

use crate::profile::Profile;

/// A similarity metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// 0.4·cosine + 0.3·jaccard + 0.3/(1+JSD).
    Paper,
    /// Cosine of unigram frequencies.
    Cosine,
    /// Jaccard index of the supports.
    Jaccard,
    /// Negated Jensen–Shannon divergence (nats).
    Jsd,
    /// 1/(1+JSD).
    JsSim,
    /// 1 − Hellinger distance.
    Hellinger,
    /// Negated cross-entropy of the target under the smoothed scored corpus (nats).
    CrossEntropy,
    /// Negated KL(target ‖ smoothed scored corpus) (nats).
    Kl,
    /// Mean cosine over n-gram orders 1..N.
    NgramCosine,
}

impl Metric {
    /// Every metric, in documentation order.
    pub const ALL: [Metric; 9] = [
        Metric::Paper,
        Metric::Cosine,
        Metric::Jaccard,
        Metric::Jsd,
        Metric::JsSim,
        Metric::Hellinger,
        Metric::CrossEntropy,
        Metric::Kl,
        Metric::NgramCosine,
    ];

    /// The command-line name.
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Paper => "paper",
            Metric::Cosine => "cosine",
            Metric::Jaccard => "jaccard",
            Metric::Jsd => "jsd",
            Metric::JsSim => "js-sim",
            Metric::Hellinger => "hellinger",
            Metric::CrossEntropy => "cross-entropy",
            Metric::Kl => "kl",
            Metric::NgramCosine => "ngram-cosine",
        }
    }

    /// Whether the metric reads n-gram counts (order ≥ 2).
    pub fn needs_ngrams(&self) -> bool {
        *self == Metric::NgramCosine
    }
}

impl std::str::FromStr for Metric {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Metric> {
        Metric::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                anyhow::anyhow!("unknown metric `{s}` (metrics: {})", names.join(", "))
            })
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A token distribution to compare: unigram frequencies, the (effective) token count behind
/// them, and per-order n-gram frequencies when profiled.
#[derive(Clone, Debug)]
pub struct Dist {
    /// Unigram frequencies over the whole vocabulary (sum 1).
    pub uni: Vec<f64>,
    /// Tokens behind the frequencies (for smoothing).
    pub tokens: f64,
    /// Orders 2..=N: (key (packed n-gram or bucket), frequency within that order), sorted by
    /// key, keys distinct. Sorted, not hashed: sums over them run in key order, so a
    /// similarity is the same f64 in every run (a hash map's order changes per process).
    pub ngrams: Vec<Vec<(u64, f64)>>,
}

impl Dist {
    /// The distribution of a profile.
    pub fn of(p: &Profile) -> Dist {
        let ngrams = p
            .ngrams
            .iter()
            .map(|t| {
                let sparse = t.sparse();
                let total: u64 = sparse.iter().map(|x| x.1).sum();
                let tot = total.max(1) as f64;
                sparse
                    .into_iter()
                    .map(|(k, c)| (k, c as f64 / tot))
                    .collect()
            })
            .collect();
        Dist {
            uni: p.unigram_freqs(),
            tokens: p.totals.tokens as f64,
            ngrams,
        }
    }

    /// Unigram distribution from raw counts.
    pub fn from_counts(counts: &[f64]) -> Dist {
        let total: f64 = counts.iter().sum();
        let t = if total > 0.0 { total } else { 1.0 };
        Dist {
            uni: counts.iter().map(|c| c / t).collect(),
            tokens: total,
            ngrams: Vec::new(),
        }
    }

    /// The token-weighted blend (1 − w)·self + w·other. Unigram (and n-gram) frequencies mix
    /// linearly in token weights, so this is the exact distribution of such a mixture.
    pub fn blend(&self, other: &Dist, w: f64) -> Dist {
        let uni = self
            .uni
            .iter()
            .zip(&other.uni)
            .map(|(a, b)| (1.0 - w) * a + w * b)
            .collect();
        let ngrams = self
            .ngrams
            .iter()
            .zip(&other.ngrams)
            .map(|(a, b)| blend_sorted(a, b, w))
            .collect();
        Dist {
            uni,
            tokens: (1.0 - w) * self.tokens + w * other.tokens,
            ngrams,
        }
    }
}

/// Cosine similarity of two vectors (0 when either is all zeros).
pub fn cosine(p: &[f64], q: &[f64]) -> f64 {
    let (mut dot, mut np, mut nq) = (0.0, 0.0, 0.0);
    for (a, b) in p.iter().zip(q) {
        dot += a * b;
        np += a * a;
        nq += b * b;
    }
    if np == 0.0 || nq == 0.0 {
        return 0.0;
    }
    dot / (np.sqrt() * nq.sqrt())
}

/// Jaccard index of the supports (entries > 0).
pub fn jaccard(p: &[f64], q: &[f64]) -> f64 {
    let (mut inter, mut union) = (0u64, 0u64);
    for (a, b) in p.iter().zip(q) {
        let (x, y) = (*a > 0.0, *b > 0.0);
        inter += u64::from(x && y);
        union += u64::from(x || y);
    }
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Jensen–Shannon divergence in nats (between 0 and ln 2).
pub fn jsd(p: &[f64], q: &[f64]) -> f64 {
    let mut s = 0.0;
    for (a, b) in p.iter().zip(q) {
        let m = 0.5 * (a + b);
        if *a > 0.0 {
            s += 0.5 * a * (a / m).ln();
        }
        if *b > 0.0 {
            s += 0.5 * b * (b / m).ln();
        }
    }
    s.max(0.0)
}

/// Hellinger distance (between 0 and 1).
pub fn hellinger(p: &[f64], q: &[f64]) -> f64 {
    let s: f64 = p
        .iter()
        .zip(q)
        .map(|(a, b)| (a.sqrt() - b.sqrt()).powi(2))
        .sum();
    (s / 2.0).sqrt()
}

/// Additively smoothed frequencies: (cᵢ + α)/(N + α·V) with cᵢ = pᵢ·N.
pub fn smooth(p: &[f64], tokens: f64, alpha: f64) -> Vec<f64> {
    let v = p.len() as f64;
    p.iter()
        .map(|x| (x * tokens + alpha) / (tokens + alpha * v))
        .collect()
}

/// Cross-entropy H(q, r) = −Σ qᵢ log rᵢ in nats (r must be positive where q is).
pub fn cross_entropy(q: &[f64], r: &[f64]) -> f64 {
    q.iter()
        .zip(r)
        .filter(|(a, _)| **a > 0.0)
        .map(|(a, b)| -a * b.ln())
        .sum()
}

/// KL(q ‖ r) in nats (r must be positive where q is).
pub fn kl(q: &[f64], r: &[f64]) -> f64 {
    q.iter()
        .zip(r)
        .filter(|(a, _)| **a > 0.0)
        .map(|(a, b)| a * (a / b).ln())
        .sum()
}

fn sparse_cosine(a: &[(u64, f64)], b: &[(u64, f64)]) -> f64 {
    let (mut i, mut j, mut dot) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                dot += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    let na: f64 = a.iter().map(|(_, v)| v * v).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|(_, v)| v * v).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// (1 − w)·a + w·b of two sorted sparse vectors, sorted.
fn blend_sorted(a: &[(u64, f64)], b: &[(u64, f64)], w: f64) -> Vec<(u64, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let next = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                i += 1;
                j += 1;
                (x.0, (1.0 - w) * x.1 + w * y.1)
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                i += 1;
                (x.0, (1.0 - w) * x.1)
            }
            (Some(x), None) => {
                i += 1;
                (x.0, (1.0 - w) * x.1)
            }
            (_, Some(y)) => {
                j += 1;
                (y.0, w * y.1)
            }
            (None, None) => unreachable!(),
        };
        out.push(next);
    }
    out
}

/// The `paper` metric's parts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PaperParts {
    /// Cosine of unigram frequencies.
    pub cosine: f64,
    /// Jaccard index of supports.
    pub jaccard: f64,
    /// Jensen–Shannon divergence (nats).
    pub jsd: f64,
}

impl PaperParts {
    /// The parts for x and t.
    pub fn of(x: &[f64], t: &[f64]) -> PaperParts {
        PaperParts {
            cosine: cosine(x, t),
            jaccard: jaccard(x, t),
            jsd: jsd(x, t),
        }
    }

    /// 0.4·cosine + 0.3·jaccard + 0.3/(1+JSD).
    pub fn blend(&self) -> f64 {
        PAPER_COSINE * self.cosine + PAPER_JACCARD * self.jaccard + PAPER_JS / (1.0 + self.jsd)
    }
}

/// The paper's weights of its token similarity: 0.4·cosine + 0.3·jaccard + 0.3/(1 + JSD).
/// Every use of the `paper` metric (here and in `mix`'s optimiser and its gradient) reads
/// them from here.
pub const PAPER_COSINE: f64 = 0.4;
/// The paper's weight of the Jaccard index of supports.
pub const PAPER_JACCARD: f64 = 0.3;
/// The paper's weight of the Jensen–Shannon similarity 1/(1 + JSD).
pub const PAPER_JS: f64 = 0.3;

/// Settings shared by the metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricOptions {
    /// Additive smoothing α for cross-entropy and kl.
    pub smoothing: f64,
}

impl Default for MetricOptions {
    fn default() -> Self {
        MetricOptions { smoothing: 0.01 }
    }
}

/// sim(x, t) under `metric`.
pub fn similarity(metric: Metric, x: &Dist, t: &Dist, o: &MetricOptions) -> Result<f64> {
    Ok(match metric {
        Metric::Paper => PaperParts::of(&x.uni, &t.uni).blend(),
        Metric::Cosine => cosine(&x.uni, &t.uni),
        Metric::Jaccard => jaccard(&x.uni, &t.uni),
        Metric::Jsd => -jsd(&x.uni, &t.uni),
        Metric::JsSim => 1.0 / (1.0 + jsd(&x.uni, &t.uni)),
        Metric::Hellinger => 1.0 - hellinger(&x.uni, &t.uni),
        Metric::CrossEntropy => -cross_entropy(&t.uni, &smooth(&x.uni, x.tokens, o.smoothing)),
        Metric::Kl => -kl(&t.uni, &smooth(&x.uni, x.tokens, o.smoothing)),
        Metric::NgramCosine => {
            let n = x.ngrams.len().min(t.ngrams.len());
            if n == 0 {
                bail!("ngram-cosine needs profiles with n-grams: pass --ngram N (N ≥ 2)");
            }
            let mut s = cosine(&x.uni, &t.uni);
            for i in 0..n {
                s += sparse_cosine(&x.ngrams[i], &t.ngrams[i]);
            }
            s / (n + 1) as f64
        }
    })
}

/// Checks that profiles can be compared: same tokenizer, enough n-gram orders.
pub fn check_comparable(profiles: &[&Profile], metric: Metric, ngram: usize) -> Result<()> {
    let first = profiles[0];
    for p in &profiles[1..] {
        if p.meta.tokenizer_sha256 != first.meta.tokenizer_sha256 {
            bail!(
                "profiles `{}` and `{}` were made with different tokenizers ({} and {}); token distributions are only comparable under one tokenizer",
                first.meta.corpus,
                p.meta.corpus,
                first.meta.tokenizer_path,
                p.meta.tokenizer_path
            );
        }
    }
    if metric.needs_ngrams() {
        for p in profiles {
            if p.meta.ngram < ngram.max(2) {
                bail!(
                    "metric {metric} needs {}-grams, but the profile of `{}` has order {} only",
                    ngram.max(2),
                    p.meta.corpus,
                    p.meta.ngram
                );
            }
        }
    }
    Ok(())
}

/// How `--mix W` blends a candidate with the pretraining corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MixBy {
    /// W is the candidate's share of tokens (exact: unigram mixing is linear in tokens).
    Tokens,
    /// W is the candidate's share of documents, as the authors' code blends: converted to a
    /// token share with the measured mean tokens per document of each corpus,
    /// w_tok = W·L_M / (W·L_M + (1 − W)·L_P).
    Docs,
}

/// The mixture-aware variant: each candidate scored as its blend with the pretraining corpus.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MixSpec {
    /// The candidate's share.
    pub weight: f64,
    /// Share of tokens or of documents.
    pub by: MixBy,
}

/// One row of a proximity table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Corpus name.
    pub corpus: String,
    /// pretrain, midtrain or target.
    pub role: crate::data::catalog::Role,
    /// Metric name.
    pub metric: Metric,
    /// sim(corpus, target).
    pub sim: f64,
    /// The `paper` metric's parts (only for `paper`).
    pub parts: Option<PaperParts>,
    /// PA(corpus → target), candidates only.
    pub pa: Option<f64>,
    /// Token weight of the candidate in its blend with the pretraining corpus (with `--mix`).
    pub mix_token_weight: Option<f64>,
    /// 95% bootstrap interval of `sim`.
    pub sim_ci: Option<(f64, f64)>,
    /// 95% bootstrap interval of `pa`.
    pub pa_ci: Option<(f64, f64)>,
    /// The share of the corpus's documents (those profiled) that share an n-gram with an
    /// evaluation set (`--overlap`; see [`crate::analysis::overlap`]).
    pub contaminated_share: Option<f64>,
}

/// A proximity question: P, candidates, T.
pub struct Query<'a> {
    /// Pretraining corpus profile.
    pub pretrain: &'a Profile,
    /// Candidate midtraining corpora profiles (at least one).
    pub candidates: Vec<&'a Profile>,
    /// Target profile.
    pub target: &'a Profile,
    /// Metrics to report.
    pub metrics: Vec<Metric>,
    /// Metric settings.
    pub options: MetricOptions,
    /// Score candidates blended with P.
    pub mix: Option<MixSpec>,
    /// Bootstrap replicates and seed (needs profiles with per-document counts).
    pub bootstrap: Option<(usize, u64)>,
    /// Where the bootstrap reports its replicates.
    pub progress: &'a dyn crate::util::progress::Progress,
}

/// Refuses fewer than three corpora, before any is profiled: proximity needs P, at least one
/// candidate and T.
pub fn check_corpus_count(n: usize) -> Result<()> {
    if n < 3 {
        bail!("proximity needs at least three corpora: the pretraining corpus, one or more candidates, and the target (got {n})");
    }
    Ok(())
}

impl<'a> Query<'a> {
    /// The query of corpora listed as on the command line, P first, T last and the candidates
    /// between, with no mix and no bootstrap (set those fields after).
    pub fn of_list(
        profiles: &[&'a Profile],
        metrics: Vec<Metric>,
        options: MetricOptions,
        progress: &'a dyn crate::util::progress::Progress,
    ) -> Result<Self> {
        check_corpus_count(profiles.len())?;
        let n = profiles.len();
        Ok(Query {
            pretrain: profiles[0],
            candidates: profiles[1..n - 1].to_vec(),
            target: profiles[n - 1],
            metrics,
            options,
            mix: None,
            bootstrap: None,
            progress,
        })
    }
}

fn token_weight(mix: &MixSpec, p: &Profile, m: &Profile) -> f64 {
    match mix.by {
        MixBy::Tokens => mix.weight,
        MixBy::Docs => {
            let lp = p.totals.tokens as f64 / p.totals.documents.max(1) as f64;
            let lm = m.totals.tokens as f64 / m.totals.documents.max(1) as f64;
            let num = mix.weight * lm;
            let den = num + (1.0 - mix.weight) * lp;
            if den == 0.0 {
                0.0
            } else {
                num / den
            }
        }
    }
}

/// sim of each corpus (P, candidates…, T) to T for one metric, blending candidates if asked.
fn sims_for(
    metric: Metric,
    dists: &[Dist],
    weights: &[Option<f64>],
    o: &MetricOptions,
) -> Result<Vec<f64>> {
    let t = dists.last().expect("target");
    let p = &dists[0];
    let mut out = Vec::with_capacity(dists.len());
    for (i, d) in dists.iter().enumerate() {
        let s = match weights[i] {
            Some(w) => similarity(metric, &p.blend(d, w), t, o)?,
            None => similarity(metric, d, t, o)?,
        };
        out.push(s);
    }
    Ok(out)
}

/// Computes the proximity table: for each metric, P first, candidates by decreasing PA, T last.
pub fn compute(q: &Query<'_>) -> Result<Vec<Row>> {
    if q.candidates.is_empty() {
        bail!(
            "proximity needs at least three corpora: pretraining, one or more candidates, target"
        );
    }
    let mut all: Vec<&Profile> = vec![q.pretrain];
    all.extend(q.candidates.iter().copied());
    all.push(q.target);
    let max_n = if q.metrics.iter().any(|m| m.needs_ngrams()) {
        all.iter().map(|p| p.meta.ngram).min().unwrap_or(1)
    } else {
        1
    };
    for m in &q.metrics {
        check_comparable(&all, *m, max_n)?;
    }
    if let Some(mix) = q.mix {
        if !(0.0..=1.0).contains(&mix.weight) {
            bail!("--mix takes a weight between 0 and 1, got {}", mix.weight);
        }
    }
    let dists: Vec<Dist> = all.iter().map(|p| Dist::of(p)).collect();
    let weights: Vec<Option<f64>> = (0..all.len())
        .map(|i| {
            if i == 0 || i == all.len() - 1 {
                None
            } else {
                q.mix.map(|m| token_weight(&m, q.pretrain, all[i]))
            }
        })
        .collect();
    let boot = match q.bootstrap {
        Some((b, seed)) => Some(bootstrap(q, &all, &weights, b, seed)?),
        None => None,
    };
    let last = all.len() - 1;
    let mut rows = Vec::new();
    for (mi, &metric) in q.metrics.iter().enumerate() {
        let sims = sims_for(metric, &dists, &weights, &q.options)?;
        let mut block: Vec<Row> = Vec::new();
        for (i, p) in all.iter().enumerate() {
            let role = if i == 0 {
                crate::data::catalog::Role::Pretrain
            } else if i == last {
                crate::data::catalog::Role::Target
            } else {
                crate::data::catalog::Role::Midtrain
            };
            let parts = (metric == Metric::Paper).then(|| match weights[i] {
                Some(w) => PaperParts::of(&dists[0].blend(&dists[i], w).uni, &dists[last].uni),
                None => PaperParts::of(&dists[i].uni, &dists[last].uni),
            });
            let is_cand = role == crate::data::catalog::Role::Midtrain;
            let (sim_ci, pa_ci) = match &boot {
                Some(b) => (Some(b.sim_ci[mi][i]), is_cand.then(|| b.pa_ci[mi][i])),
                None => (None, None),
            };
            block.push(Row {
                corpus: p.meta.corpus.clone(),
                role,
                metric,
                sim: sims[i],
                parts,
                pa: is_cand.then(|| sims[i] - sims[0]),
                mix_token_weight: weights[i],
                sim_ci,
                pa_ci,
                contaminated_share: None,
            });
        }
        let t = block.pop().expect("target row");
        let p0 = block.remove(0);
        block.sort_by(|a, b| {
            b.pa.partial_cmp(&a.pa)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.corpus.cmp(&b.corpus))
        });
        rows.push(p0);
        rows.extend(block);
        rows.push(t);
    }
    Ok(rows)
}

struct Boot {
    /// [metric][corpus] → (lo, hi).
    sim_ci: Vec<Vec<(f64, f64)>>,
    pa_ci: Vec<Vec<(f64, f64)>>,
}

/// Resamples each corpus's documents with replacement `b` times and recomputes everything.
fn bootstrap(
    q: &Query<'_>,
    all: &[&Profile],
    weights: &[Option<f64>],
    b: usize,
    seed: u64,
) -> Result<Boot> {
    use rayon::prelude::*;
    if b < 2 {
        bail!("--bootstrap needs at least 2 replicates");
    }
    crate::analysis::stats::check_bootstrap(b, "--bootstrap")?;
    if q.metrics.iter().any(|m| m.needs_ngrams()) {
        bail!("--bootstrap supports the unigram metrics only (not ngram-cosine)");
    }
    let docs: Vec<&Vec<Vec<(u32, u32)>>> = all
        .iter()
        .map(|p| {
            p.docs.as_ref().ok_or_else(|| {
                anyhow::anyhow!(
                    "profile of `{}` has no per-document counts for --bootstrap",
                    p.meta.corpus
                )
            })
        })
        .collect::<Result<_>>()?;
    let vocab = all[0].unigram.len();
    q.progress
        .start_counting("bootstrap", b as u64, "replicates");
    // replicate → [metric][corpus] sim
    let reps: Vec<Vec<Vec<f64>>> = (0..b)
        .into_par_iter()
        .map(|r| -> Result<Vec<Vec<f64>>> {
            crate::util::progress::check_interrupt()?;
            let dists: Vec<Dist> = docs
                .iter()
                .enumerate()
                .map(|(j, d)| {
                    let mut rng = crate::util::rng::Rng::new(crate::util::rng::mix64(
                        seed ^ crate::util::rng::mix64(((r as u64) << 16) | j as u64),
                    ));
                    let mut counts = vec![0.0f64; vocab];
                    for _ in 0..d.len() {
                        for &(id, c) in &d[rng.below(d.len() as u64) as usize] {
                            counts[id as usize] += c as f64;
                        }
                    }
                    Dist::from_counts(&counts)
                })
                .collect();
            let sims = q
                .metrics
                .iter()
                .map(|m| sims_for(*m, &dists, weights, &q.options))
                .collect();
            q.progress.advance(1, 0, 0);
            sims
        })
        .collect::<Result<_>>()?;
    q.progress.finish();
    let n = all.len();
    let mut sim_ci = Vec::new();
    let mut pa_ci = Vec::new();
    for mi in 0..q.metrics.len() {
        let mut s_row = Vec::new();
        let mut p_row = Vec::new();
        for i in 0..n {
            let mut s: Vec<f64> = reps.iter().map(|r| r[mi][i]).collect();
            let mut pa: Vec<f64> = reps.iter().map(|r| r[mi][i] - r[mi][0]).collect();
            s.sort_by(|a, b| a.total_cmp(b));
            pa.sort_by(|a, b| a.total_cmp(b));
            s_row.push((
                crate::analysis::stats::percentile(&s, 0.025),
                crate::analysis::stats::percentile(&s, 0.975),
            ));
            p_row.push((
                crate::analysis::stats::percentile(&pa, 0.025),
                crate::analysis::stats::percentile(&pa, 0.975),
            ));
        }
        sim_ci.push(s_row);
        pa_ci.push(p_row);
    }
    Ok(Boot { sim_ci, pa_ci })
}

/// What profiles must hold to answer `metrics`: `base` with n-grams (order at least 2) only
/// when a metric reads them, unigrams alone otherwise, and per-document counts when a
/// bootstrap is asked for.
pub fn profile_options(
    base: crate::profile::ProfileOptions,
    metrics: &[Metric],
    bootstrap: bool,
) -> crate::profile::ProfileOptions {
    let needs_ngrams = metrics.iter().any(|m| m.needs_ngrams());
    crate::profile::ProfileOptions {
        ngram: if needs_ngrams { base.ngram.max(2) } else { 1 },
        keep_docs: bootstrap,
        ..base
    }
}

/// The similarity matrix: entry (i, j) = sim(profile i, profile j) (j plays the target).
pub fn matrix(profiles: &[&Profile], metric: Metric, o: &MetricOptions) -> Result<Vec<Vec<f64>>> {
    check_comparable(profiles, metric, 2)?;
    let dists: Vec<Dist> = profiles.iter().map(|p| Dist::of(p)).collect();
    dists
        .iter()
        .map(|x| dists.iter().map(|t| similarity(metric, x, t, o)).collect())
        .collect()
}

fn opt(x: Option<f64>) -> String {
    x.map(crate::util::numfmt::num).unwrap_or_default()
}

/// The table of `rows` as CSV, the columns of `proximity --csv`: corpus, role, metric, sim,
/// cosine, jaccard, jsd, pa (empty where a row has none), then mix_token_weight when `mix`,
/// and sim_lo, sim_hi, pa_lo, pa_hi when `boot`. Numbers are written so that they read back
/// as the same f64.
pub fn rows_csv(rows: &[Row], mix: bool, boot: bool) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "corpus", "role", "metric", "sim", "cosine", "jaccard", "jsd", "pa",
    ];
    if mix {
        header.push("mix_token_weight");
    }
    if boot {
        header.extend(["sim_lo", "sim_hi", "pa_lo", "pa_hi"]);
    }
    let overlap = rows.iter().any(|r| r.contaminated_share.is_some());
    if overlap {
        header.push("contaminated_share");
    }
    w.write_record(&header).expect("in-memory CSV");
    for r in rows {
        let mut rec = vec![
            r.corpus.clone(),
            r.role.to_string(),
            r.metric.to_string(),
            crate::util::numfmt::num(r.sim),
            opt(r.parts.map(|p| p.cosine)),
            opt(r.parts.map(|p| p.jaccard)),
            opt(r.parts.map(|p| p.jsd)),
            opt(r.pa),
        ];
        if mix {
            rec.push(opt(r.mix_token_weight));
        }
        if boot {
            rec.extend([
                opt(r.sim_ci.map(|c| c.0)),
                opt(r.sim_ci.map(|c| c.1)),
                opt(r.pa_ci.map(|c| c.0)),
                opt(r.pa_ci.map(|c| c.1)),
            ]);
        }
        if overlap {
            rec.push(opt(r.contaminated_share));
        }
        w.write_record(&rec).expect("in-memory CSV");
    }
    String::from_utf8(w.into_inner().expect("in-memory CSV")).expect("UTF-8")
}

/// The table of `rows` as a DataFrame with [`rows_csv`]'s columns (numbers as the exact f64s,
/// nulls where the CSV is empty): what the Python package returns.
pub fn rows_frame(rows: &[Row], mix: bool, boot: bool) -> Result<polars::prelude::DataFrame> {
    use polars::prelude::{Column, DataFrame};
    let text = |name: &str, f: fn(&Row) -> String| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let float = |name: &str, f: fn(&Row) -> Option<f64>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let mut columns = vec![
        text("corpus", |r| r.corpus.clone()),
        text("role", |r| r.role.to_string()),
        text("metric", |r| r.metric.to_string()),
        float("sim", |r| Some(r.sim)),
        float("cosine", |r| r.parts.map(|p| p.cosine)),
        float("jaccard", |r| r.parts.map(|p| p.jaccard)),
        float("jsd", |r| r.parts.map(|p| p.jsd)),
        float("pa", |r| r.pa),
    ];
    if mix {
        columns.push(float("mix_token_weight", |r| r.mix_token_weight));
    }
    if boot {
        columns.extend([
            float("sim_lo", |r| r.sim_ci.map(|c| c.0)),
            float("sim_hi", |r| r.sim_ci.map(|c| c.1)),
            float("pa_lo", |r| r.pa_ci.map(|c| c.0)),
            float("pa_hi", |r| r.pa_ci.map(|c| c.1)),
        ]);
    }
    if rows.iter().any(|r| r.contaminated_share.is_some()) {
        columns.push(float("contaminated_share", |r| r.contaminated_share));
    }
    Ok(DataFrame::new_infer_height(columns)?)
}

/// A similarity matrix as a DataFrame: a `corpus` column of names, one f64 column per name.
pub fn matrix_frame(names: &[String], m: &[Vec<f64>]) -> Result<polars::prelude::DataFrame> {
    use polars::prelude::{Column, DataFrame};
    let mut columns = vec![Column::new("corpus".into(), names.to_vec())];
    for (j, name) in names.iter().enumerate() {
        let col: Vec<f64> = m.iter().map(|row| row[j]).collect();
        columns.push(Column::new(name.as_str().into(), col));
    }
    Ok(DataFrame::new_infer_height(columns)?)
}

/// A similarity matrix as CSV: a `corpus` column of row names, then one column per name
/// (entry = sim(row, column)).
pub fn matrix_csv(names: &[String], m: &[Vec<f64>]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["corpus".to_string()];
    header.extend(names.iter().cloned());
    w.write_record(&header).expect("in-memory CSV");
    for (i, row) in m.iter().enumerate() {
        let mut rec = vec![names[i].clone()];
        rec.extend(row.iter().map(|x| crate::util::numfmt::num(*x)));
        w.write_record(&rec).expect("in-memory CSV");
    }
    String::from_utf8(w.into_inner().expect("in-memory CSV")).expect("UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Tiny distributions with values worked out by hand.
    // p = (1/2, 1/2, 0), q = (1/2, 0, 1/2).
    const P: [f64; 3] = [0.5, 0.5, 0.0];
    const Q: [f64; 3] = [0.5, 0.0, 0.5];

    #[test]
    fn cosine_by_hand() {
        // p·q = 1/4, ‖p‖ = ‖q‖ = 1/√2 → 1/4 / (1/2) = 1/2.
        assert!((cosine(&P, &Q) - 0.5).abs() < 1e-15);
        assert!((cosine(&P, &P) - 1.0).abs() < 1e-15);
        assert_eq!(cosine(&[0.0; 3], &P), 0.0);
    }

    #[test]
    fn jaccard_by_hand() {
        // supports {0,1} and {0,2}: 1 shared of 3.
        assert!((jaccard(&P, &Q) - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn jsd_by_hand() {
        // m = (1/2, 1/4, 1/4). KL(p‖m) = 1/2 ln(1) + 1/2 ln(2) = ln2/2; same for q; JSD = ln2/2.
        let want = std::f64::consts::LN_2 / 2.0;
        assert!((jsd(&P, &Q) - want).abs() < 1e-15);
        // Disjoint supports reach the maximum ln 2.
        assert!((jsd(&[1.0, 0.0], &[0.0, 1.0]) - std::f64::consts::LN_2).abs() < 1e-15);
        assert_eq!(jsd(&P, &P), 0.0);
    }

    #[test]
    fn paper_by_hand() {
        let want = 0.4 * 0.5 + 0.3 / 3.0 + 0.3 / (1.0 + std::f64::consts::LN_2 / 2.0);
        assert!((PaperParts::of(&P, &Q).blend() - want).abs() < 1e-15);
        assert!((PaperParts::of(&P, &P).blend() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn hellinger_by_hand() {
        // (√.5-√.5)² + (√.5)² + (√.5)² = 1 → H = √(1/2).
        assert!((hellinger(&P, &Q) - 0.5f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn smoothing_and_cross_entropy_by_hand() {
        // counts (2, 2, 0), N = 4, α = 1, V = 3 → (3/7, 3/7, 1/7).
        let s = smooth(&P, 4.0, 1.0);
        assert!((s[0] - 3.0 / 7.0).abs() < 1e-15 && (s[2] - 1.0 / 7.0).abs() < 1e-15);
        // H(q, s) = −(½ ln 3/7 + ½ ln 1/7).
        let want = -(0.5 * (3.0f64 / 7.0).ln() + 0.5 * (1.0f64 / 7.0).ln());
        assert!((cross_entropy(&Q, &s) - want).abs() < 1e-14);
        // KL = H(q, s) − H(q) with H(q) = ln 2.
        assert!((kl(&Q, &s) - (want - std::f64::consts::LN_2)).abs() < 1e-14);
    }

    #[test]
    fn blend_is_linear() {
        let a = Dist::from_counts(&[3.0, 1.0, 0.0]);
        let b = Dist::from_counts(&[0.0, 0.0, 5.0]);
        let m = a.blend(&b, 0.2);
        assert!(
            (m.uni[0] - 0.6).abs() < 1e-15
                && (m.uni[1] - 0.2).abs() < 1e-15
                && (m.uni[2] - 0.2).abs() < 1e-15
        );
    }

    #[test]
    fn metric_names_round_trip() {
        for m in Metric::ALL {
            assert_eq!(m.name().parse::<Metric>().unwrap(), m);
        }
        let e = "cosin".parse::<Metric>().unwrap_err().to_string();
        assert!(
            e.contains("unknown metric `cosin`") && e.contains("paper"),
            "{e}"
        );
    }
}
