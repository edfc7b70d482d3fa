//! `suggest-mix`: midtraining mixtures proposed from token distributions.
//!
//! A mixture is q = w₀·P + Σ wᵢ·Mᵢ in token weights; since unigram frequencies mix linearly
//! in tokens, q's distribution is exact. The search maximises sim(q, T) (equivalently
//! PA(q) = sim(q, T) − sim(P, T)) over the box-constrained simplex
//! {Σw = 1, lᵢ ≤ wᵢ ≤ uᵢ}, where the bounds encode the constraints:
//! - the general share w₀ ≥ `min_general`, and w₀ ≥ 1 − W_max(start) from the timing rule;
//! - each source's tokens from the start step to the end (its pretraining tokens too, for P)
//!   ≤ available × `max_repeat`.
//!
//! Optimizer: projected gradient ascent with a backtracking step, projecting exactly onto the
//! box-constrained simplex (bisection on the shift τ of wᵢ = clip(vᵢ − τ, lᵢ, uᵢ)). The smooth
//! metrics (cosine, jsd, js-sim, and the cosine and JSD parts of `paper`) have closed-form
//! gradients. `paper`'s jaccard part is piecewise constant (it changes only when a source
//! enters or leaves the mixture), so for `paper` the search is refined over every support (set
//! of sources with positive weight): the smooth part is maximised on each support and the
//! jaccard of that support added; the best support wins.

use anyhow::{bail, Result};
use std::collections::BTreeMap;

use serde::Serialize;

use crate::analysis::proximity::{cosine, jsd, Dist, Metric, PaperParts, PAPER_COSINE, PAPER_JS};
use crate::profile::Profile;

/// Metrics suggest-mix can optimise.
pub const SUPPORTED: [Metric; 4] = [Metric::Paper, Metric::Cosine, Metric::Jsd, Metric::JsSim];

/// The timing × weight rule: the largest specialized share allowed when midtraining starts at
/// a given fraction of the run, piecewise linear between points.
///
/// Default (shared/docs/paper.md §6): early introduction tolerates high weights (80% at up to
/// 10% of the run), late introduction needs low ones (10% at 82% of the run), 5% at the end.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimingRule {
    /// (start fraction, maximum specialized share), by increasing start.
    pub points: Vec<(f64, f64)>,
    /// Where the rule came from.
    pub source: String,
}

impl Default for TimingRule {
    fn default() -> Self {
        TimingRule {
            points: vec![(0.0, 0.8), (0.1, 0.8), (0.82, 0.1), (1.0, 0.05)],
            source: "default rule (paper §6)".into(),
        }
    }
}

impl TimingRule {
    /// The rule a runs table implies (`suggest-mix --fit`): per start fraction, the largest
    /// weight whose runs gained on average (mean RI > 0), or 0 where none did. `None` when the
    /// table has no `start_frac`, `weight` and `ri` columns.
    pub fn from_runs(runs: &crate::analysis::stats::Table) -> Result<Option<TimingRule>> {
        let (Some(fi), Some(wi), Some(ri)) = (
            runs.find("start_frac"),
            runs.find("weight"),
            runs.find("ri"),
        ) else {
            return Ok(None);
        };
        // start fraction → weight → the RI of its runs; keyed by the cells' text so that
        // rows written alike group alike.
        let mut by: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
        for row in 0..runs.rows.len() {
            if let Some(g) = runs.number(row, ri)? {
                by.entry(runs.text(row, fi).to_string())
                    .or_default()
                    .entry(runs.text(row, wi).to_string())
                    .or_default()
                    .push(g);
            }
        }
        let mut points: Vec<(f64, f64)> = Vec::new();
        for (f, ws) in by {
            let f: f64 = f.parse().map_err(|_| {
                anyhow::anyhow!("{}: start_frac {f:?} is not a number", runs.path.display())
            })?;
            let best = ws
                .iter()
                .filter(|(_, g)| g.iter().sum::<f64>() / g.len() as f64 > 0.0)
                .filter_map(|(w, _)| w.parse::<f64>().ok())
                .fold(0.0f64, f64::max);
            points.push((f, best));
        }
        if points.is_empty() {
            return Ok(None);
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(Some(TimingRule {
            points,
            source: format!("fitted on {}", runs.path.display()),
        }))
    }

    /// Maximum specialized share at start fraction `f`.
    pub fn max_weight(&self, f: f64) -> f64 {
        let p = &self.points;
        if f <= p[0].0 {
            return p[0].1;
        }
        for w in p.windows(2) {
            if f <= w[1].0 {
                let t = (f - w[0].0) / (w[1].0 - w[0].0);
                return w[0].1 + t * (w[1].1 - w[0].1);
            }
        }
        p[p.len() - 1].1
    }
}

/// What `suggest-mix` maximises: sim(q, T) of a blend q of the sources under a metric, with
/// the distributions restricted to the tokens any of them uses (others add nothing to any
/// metric).
#[derive(Clone, Debug)]
pub struct Objective {
    /// Source distributions, P first.
    pub sources: Vec<Vec<f64>>,
    /// Target distribution.
    pub target: Vec<f64>,
    /// Metric.
    pub metric: Metric,
    /// Smallest weight of a source that is in the mixture at all. Without it, `paper`'s
    /// jaccard part would reward adding a source at a vanishing weight (it only sees support).
    pub min_weight: f64,
}

impl Objective {
    /// Builds the objective from full-vocabulary frequency vectors.
    pub fn new(sources: &[&[f64]], target: &[f64], metric: Metric) -> Result<Objective> {
        if !SUPPORTED.contains(&metric) {
            let names: Vec<&str> = SUPPORTED.iter().map(|m| m.name()).collect();
            bail!(
                "suggest-mix optimises the metrics {} (not {metric})",
                names.join(", ")
            );
        }
        let keep: Vec<usize> = (0..target.len())
            .filter(|&i| target[i] > 0.0 || sources.iter().any(|s| s[i] > 0.0))
            .collect();
        Ok(Objective {
            sources: sources
                .iter()
                .map(|s| keep.iter().map(|&i| s[i]).collect())
                .collect(),
            target: keep.iter().map(|&i| target[i]).collect(),
            metric,
            min_weight: 0.01,
        })
    }

    /// q for weights w.
    pub fn blend(&self, w: &[f64]) -> Vec<f64> {
        let mut q = vec![0.0; self.target.len()];
        for (s, wi) in self.sources.iter().zip(w) {
            if *wi != 0.0 {
                for (a, b) in q.iter_mut().zip(s) {
                    *a += wi * b;
                }
            }
        }
        q
    }

    /// sim(q, T) under the metric.
    pub fn sim(&self, q: &[f64]) -> f64 {
        let t = &self.target;
        match self.metric {
            Metric::Paper => PaperParts::of(q, t).blend(),
            Metric::Cosine => cosine(q, t),
            Metric::Jsd => -jsd(q, t),
            Metric::JsSim => 1.0 / (1.0 + jsd(q, t)),
            _ => unreachable!("checked in new"),
        }
    }

    /// The smooth part of the metric and its gradient with respect to w.
    fn smooth_part(&self, w: &[f64]) -> (f64, Vec<f64>) {
        let q = self.blend(w);
        let t = &self.target;
        let (mut dot, mut nq, mut nt) = (0.0, 0.0, 0.0);
        for (a, b) in q.iter().zip(t) {
            dot += a * b;
            nq += a * a;
            nt += b * b;
        }
        let (nq, nt) = (nq.sqrt().max(1e-300), nt.sqrt());
        let cos = dot / (nq * nt);
        let j = jsd(&q, t);
        // d cos/dq = t/(|q||t|) − cos·q/|q|²;  d JSD/dq = ½ ln(q/m), m = (q + t)/2.
        let (a_cos, a_jsd, value) = match self.metric {
            Metric::Paper => (
                PAPER_COSINE,
                -PAPER_JS / (1.0 + j).powi(2),
                PAPER_COSINE * cos + PAPER_JS / (1.0 + j),
            ),
            Metric::Cosine => (1.0, 0.0, cos),
            Metric::Jsd => (0.0, -1.0, -j),
            Metric::JsSim => (0.0, -1.0 / (1.0 + j).powi(2), 1.0 / (1.0 + j)),
            _ => unreachable!(),
        };
        let gq: Vec<f64> = q
            .iter()
            .zip(t)
            .map(|(&qi, &ti)| {
                let mut g = 0.0;
                if a_cos != 0.0 {
                    g += a_cos * (ti / (nq * nt) - cos * qi / (nq * nq));
                }
                if a_jsd != 0.0 {
                    // ½ ln(q/m); where t = 0, q/m = 2 for every q > 0 (and by continuity at
                    // q = 0, a token only an inactive source uses); where q = 0 < t it is −∞,
                    // clamped to a large finite pull.
                    let ratio = if ti == 0.0 {
                        2.0
                    } else {
                        qi.max(1e-300) / (0.5 * (qi + ti))
                    };
                    g += a_jsd * 0.5 * ratio.ln();
                }
                g
            })
            .collect();
        let gw = self
            .sources
            .iter()
            .map(|s| s.iter().zip(&gq).map(|(a, b)| a * b).sum())
            .collect();
        (value, gw)
    }

    /// Maximises the metric over {Σw = 1, lower ≤ w ≤ upper}; returns (w, sim).
    pub fn optimize(&self, lower: &[f64], upper: &[f64]) -> Result<(Vec<f64>, f64)> {
        check_bounds(lower, upper)?;
        if self.metric != Metric::Paper {
            let w = ascend(self, lower, upper);
            let s = self.sim(&self.blend(&w));
            return Ok((w, s));
        }
        // Refine over supports: the jaccard part is constant on each.
        let n = lower.len();
        let mut best: Option<(Vec<f64>, f64)> = None;
        for mask in 1u32..(1 << n) {
            let (mut l, mut u) = (lower.to_vec(), upper.to_vec());
            let mut ok = true;
            for i in 0..n {
                if mask & (1 << i) != 0 {
                    if upper[i] <= 0.0 {
                        ok = false;
                    }
                    l[i] = l[i].max(self.min_weight.max(1e-9));
                    if l[i] > u[i] {
                        ok = false; // the source cannot reach the minimum share
                    }
                } else {
                    if lower[i] > 0.0 {
                        ok = false;
                    }
                    u[i] = 0.0;
                }
            }
            if !ok || l.iter().sum::<f64>() > 1.0 + 1e-12 || u.iter().sum::<f64>() < 1.0 - 1e-12 {
                continue;
            }
            let w = ascend(self, &l, &u);
            let s = self.sim(&self.blend(&w));
            if best.as_ref().map(|b| s > b.1).unwrap_or(true) {
                best = Some((w, s));
            }
        }
        best.ok_or_else(|| anyhow::anyhow!("no feasible mixture"))
    }
}

fn check_bounds(lower: &[f64], upper: &[f64]) -> Result<()> {
    let (sl, su): (f64, f64) = (lower.iter().sum(), upper.iter().sum());
    if sl > 1.0 + 1e-12 {
        bail!(
            "infeasible: the lower bounds on the weights sum to {sl:.4}, more than 1 by {:.4}",
            sl - 1.0
        );
    }
    if su < 1.0 - 1e-12 {
        bail!(
            "infeasible: the upper bounds on the weights sum to {su:.4}, short of 1 by {:.4}",
            1.0 - su
        );
    }
    Ok(())
}

/// Exact Euclidean projection of v onto {Σw = 1, l ≤ w ≤ u} (bisection on τ).
pub fn project(v: &[f64], l: &[f64], u: &[f64]) -> Vec<f64> {
    let at = |tau: f64| -> Vec<f64> {
        v.iter()
            .zip(l.iter().zip(u))
            .map(|(x, (lo, hi))| (x - tau).clamp(*lo, *hi))
            .collect()
    };
    let mut lo = v
        .iter()
        .zip(u)
        .map(|(x, h)| x - h)
        .fold(f64::INFINITY, f64::min)
        - 1.0;
    let mut hi = v
        .iter()
        .zip(l)
        .map(|(x, l)| x - l)
        .fold(f64::NEG_INFINITY, f64::max)
        + 1.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if at(mid).iter().sum::<f64>() > 1.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    at(0.5 * (lo + hi))
}

/// Projected gradient ascent of the smooth part with a backtracking step.
fn ascend(p: &Objective, l: &[f64], u: &[f64]) -> Vec<f64> {
    let n = l.len();
    let mut w = project(&vec![1.0 / n as f64; n], l, u);
    let (mut f, mut g) = p.smooth_part(&w);
    let mut eta = 1.0;
    for _ in 0..500 {
        let mut improved = false;
        while eta > 1e-14 {
            let cand = project(
                &w.iter()
                    .zip(&g)
                    .map(|(a, b)| a + eta * b)
                    .collect::<Vec<_>>(),
                l,
                u,
            );
            let (fc, gc) = p.smooth_part(&cand);
            if fc > f + 1e-15 {
                let gain = fc - f;
                w = cand;
                f = fc;
                g = gc;
                eta *= 2.0;
                improved = gain > 1e-13;
                break;
            }
            eta *= 0.5;
        }
        if !improved {
            break;
        }
    }
    w
}

/// A source of a mixture with what it can supply.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SourceInfo {
    /// Corpus name.
    pub name: String,
    /// Tokens available (the corpus's size).
    pub available: f64,
    /// Mean tokens per document (for document-based exports).
    pub mean_doc_tokens: f64,
}

/// The budget and constraints of a search.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Budget {
    /// Optimizer steps of the whole run.
    pub total_steps: u64,
    /// Tokens per step.
    pub tokens_per_step: u64,
    /// A source may be repeated at most this many times.
    pub max_repeat: f64,
    /// The general share w₀ is at least this.
    pub min_general: f64,
}

/// One proposed midtraining mixture.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct MixProposal {
    /// Step at which the mixture starts (pretraining on P alone before it).
    pub start_step: u64,
    /// start_step / total_steps.
    pub start_fraction: f64,
    /// Token weights, P first.
    pub weights: Vec<(String, f64)>,
    /// sim(q, T).
    pub sim: f64,
    /// PA(q → T) = sim(q, T) − sim(P, T).
    pub pa: f64,
    /// 1 − sim(q, P): how far the mixture moves from general data (the forgetting side).
    pub distance_from_p: f64,
    /// Tokens each source supplies over the whole run.
    pub tokens: Vec<(String, f64)>,
    /// tokens / available, per source.
    pub repetition: Vec<(String, f64)>,
    /// On the Pareto front of (PA, distance from P).
    pub pareto: bool,
    /// The largest specialized share the timing rule allowed at this start.
    pub max_specialized: f64,
    /// Predicted relative improvement with its 95% prediction interval (with a fit).
    pub predicted_ri: Option<(f64, f64, f64)>,
}

/// Why a start admits no mixture, and by how much (a share of the midtraining tokens).
struct Infeasible {
    shortfall: f64,
    message: String,
}

/// Candidates that appear in none of `proposals`, each with the reason: the constraint that
/// kept it out (its available tokens × max repeat below `min_weight` at every start), or that
/// giving it weight did not raise sim(q, T).
pub fn absent_candidates(
    proposals: &[MixProposal],
    sources: &[SourceInfo],
    budget: &Budget,
    min_weight: f64,
    starts: &[f64],
) -> Vec<String> {
    let mut notes = Vec::new();
    for (i, s) in sources.iter().enumerate().skip(1) {
        if proposals.iter().any(|p| p.weights[i].1 > 0.0) {
            continue;
        }
        // Its largest possible share over the starts searched.
        let cap = starts
            .iter()
            .map(|&f| {
                let start = (f * budget.total_steps as f64).round();
                let mid = (budget.total_steps as f64 - start) * budget.tokens_per_step as f64;
                if mid > 0.0 {
                    (s.available * budget.max_repeat / mid).clamp(0.0, 1.0)
                } else {
                    1.0
                }
            })
            .fold(0.0, f64::max);
        if cap < min_weight {
            notes.push(format!(
                "`{}` is in no proposal: its {:.3e} available tokens × {} repeats make at most {:.2}% of the midtraining tokens, below --min-weight {:.2}%; raise --available {}=TOKENS or --max-repeat, or lower --min-weight",
                s.name,
                s.available,
                budget.max_repeat,
                cap * 100.0,
                min_weight * 100.0,
                s.name
            ));
        } else {
            notes.push(format!(
                "`{}` has weight 0 in every proposal shown: adding it does not raise sim(q, T)",
                s.name
            ));
        }
    }
    notes
}

/// What `suggest-mix` is asked, checked: the corpora by role, the budget and the search.
#[derive(Clone, Debug)]
pub struct Request {
    /// The pretraining corpus P.
    pub pretrain: String,
    /// Candidate midtraining corpora.
    pub candidates: Vec<String>,
    /// The fine-tuning target T.
    pub target: String,
    pub budget: Budget,
    pub metric: Metric,
    /// Smallest share of a source in a mixture (`paper` only; see [`Objective::min_weight`]).
    pub min_weight: f64,
    /// Start fractions to search.
    pub starts: Vec<f64>,
    /// Tokens available per source, given by the user (overrides cards and profiles).
    pub available: BTreeMap<String, f64>,
}

impl Request {
    /// Checks a request as the command line states it: `start` is a fraction or `auto`
    /// (0.1, 0.2, …, 0.9), `available` holds NAME=TOKENS pairs of P or a candidate.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pretrain: &str,
        candidates: &[String],
        target: &str,
        budget: Budget,
        metric: Metric,
        min_weight: f64,
        start: &str,
        available: &[String],
    ) -> Result<Request> {
        let candidates: Vec<String> = candidates
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if candidates.is_empty() {
            bail!("--candidates is empty: name at least one midtraining corpus");
        }
        let mut seen: Vec<&str> = candidates.iter().map(String::as_str).collect();
        seen.extend([pretrain, target]);
        seen.sort();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            bail!(
                "corpus `{}` is named twice among --pretrain, --candidates and --target",
                w[0]
            );
        }
        if !(0.0..1.0).contains(&budget.min_general) {
            bail!(
                "--min-general must be in [0, 1), got {}",
                budget.min_general
            );
        }
        // NaN is refused too (every comparison with it is false).
        if budget.max_repeat.is_nan()
            || budget.max_repeat <= 0.0
            || budget.total_steps == 0
            || budget.tokens_per_step == 0
        {
            bail!(
                "--max-repeat, --total-steps and --tokens-per-step must be positive numbers (got {}, {}, {})",
                budget.max_repeat,
                budget.total_steps,
                budget.tokens_per_step
            );
        }
        let mut request = Request {
            pretrain: pretrain.to_string(),
            candidates,
            target: target.to_string(),
            budget,
            metric,
            min_weight,
            starts: parse_starts(start)?,
            available: BTreeMap::new(),
        };
        request.available = parse_available(available, &request.sources())?;
        Ok(request)
    }

    /// The mixture's sources: P, then the candidates.
    pub fn sources(&self) -> Vec<String> {
        std::iter::once(&self.pretrain)
            .chain(&self.candidates)
            .cloned()
            .collect()
    }

    /// Every corpus of the request: the sources, then T.
    pub fn corpora(&self) -> Vec<String> {
        let mut v = self.sources();
        v.push(self.target.clone());
        v
    }
}

/// `--start`: a fraction in [0, 1), or `auto` for 0.1, 0.2, …, 0.9.
pub fn parse_starts(start: &str) -> Result<Vec<f64>> {
    if start == "auto" {
        return Ok((1..=9).map(|i| i as f64 / 10.0).collect());
    }
    let f: f64 = start.parse().map_err(|_| {
        anyhow::anyhow!("--start takes a fraction in [0, 1) or `auto`, not {start:?}")
    })?;
    if !(0.0..1.0).contains(&f) {
        bail!("--start must be in [0, 1), got {f}");
    }
    Ok(vec![f])
}

/// `--available NAME=TOKENS,...`: positive token counts of named sources.
pub fn parse_available(pairs: &[String], sources: &[String]) -> Result<BTreeMap<String, f64>> {
    let mut available = BTreeMap::new();
    for kv in pairs {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--available takes NAME=TOKENS, got {kv:?}"))?;
        if !sources.iter().any(|s| s == k) {
            bail!("--available names `{k}`, which is not the pretraining corpus or a candidate");
        }
        let v: f64 = v
            .parse()
            .map_err(|_| anyhow::anyhow!("--available {k}: {v:?} is not a number"))?;
        if !v.is_finite() || v <= 0.0 {
            bail!("--available {k}: must be a positive number, not {v}");
        }
        available.insert(k.to_string(), v);
    }
    Ok(available)
}

/// What `suggest-mix` answers (its `--json` output, field for field).
#[derive(Clone, Debug, Serialize)]
pub struct Suggestion {
    pub metric: Metric,
    /// sim(P, T): the baseline every PA is measured from.
    pub sim_pretrain_target: f64,
    pub timing_rule: TimingRule,
    pub sources: Vec<SourceInfo>,
    /// Ranked best first, cut to the number asked for.
    pub proposals: Vec<MixProposal>,
    /// What the user should know: estimated sizes, absent candidates, a fit without timing.
    pub notes: Vec<String>,
}

/// Answers `request` from the unigram profiles of its corpora (P, candidates, T in
/// [`Request::corpora`] order) and each source's card size (`tokens`, if the card has one).
/// With `fit` (a runs table with `pa` and `ri`), each proposal gets a predicted relative
/// improvement, and the table's start_frac/weight runs replace the timing rule.
pub fn suggest_from_profiles(
    request: &Request,
    profiles: &[Profile],
    card_tokens: &[Option<u64>],
    fit: Option<&std::path::Path>,
    top: usize,
    progress: &dyn crate::util::progress::Progress,
) -> Result<Suggestion> {
    let dists: Vec<Dist> = profiles.iter().map(Dist::of).collect();
    let n = request.candidates.len() + 1;
    let src_refs: Vec<&[f64]> = dists[..n].iter().map(|d| d.uni.as_slice()).collect();
    let mut problem = Objective::new(&src_refs, &dists[n].uni, request.metric)?;
    problem.min_weight = request.min_weight;
    let to_p = Objective::new(&src_refs, &dists[0].uni, request.metric)?;
    let mut notes = Vec::new();
    let sources: Vec<SourceInfo> = request
        .sources()
        .iter()
        .zip(profiles)
        .zip(card_tokens)
        .map(|((name, p), tokens)| {
            source_info(
                name,
                p,
                request
                    .available
                    .get(name)
                    .copied()
                    .or(tokens.map(|t| t as f64)),
                &mut notes,
            )
        })
        .collect();
    let mut rule = TimingRule::default();
    let mut line = None;
    if let Some(path) = fit {
        let runs = crate::analysis::stats::Table::read(path)?;
        let (x, y, _) = runs.xy("pa", "ri")?;
        line = Some(crate::analysis::stats::Fit::ols(&x, &y)?);
        match TimingRule::from_runs(&runs)? {
            Some(r) => rule = r,
            None => notes.push(format!(
                "{} has no start_frac/weight columns: the default timing rule stays",
                path.display()
            )),
        }
    }
    let budget = &request.budget;
    let mut props = suggest(
        &problem,
        &to_p,
        &sources,
        budget,
        &rule,
        &request.starts,
        progress,
    )?;
    if let Some(f) = &line {
        for p in &mut props {
            p.predicted_ri = Some(f.predict(p.pa, 0.95));
        }
    }
    props.truncate(top.max(1));
    let min_weight = if request.metric == Metric::Paper {
        request.min_weight
    } else {
        0.0
    };
    notes.extend(absent_candidates(
        &props,
        &sources,
        budget,
        min_weight,
        &request.starts,
    ));
    notes.extend(blend_beats_every_part(
        &problem,
        &request.candidates,
        &props,
    ));
    Ok(Suggestion {
        metric: request.metric,
        sim_pretrain_target: problem.sim(&problem.sources[0]),
        timing_rule: rule,
        sources,
        proposals: props,
        notes,
    })
}

/// The note for a question the table raises: when no candidate alone is closer to T than P
/// (every PA ≤ 0) and yet the top proposal's PA is positive. Not a fault: sim is not linear in
/// the weights, so a blend of P and candidates can lie closer to T than any of its parts.
fn blend_beats_every_part(
    problem: &Objective,
    candidates: &[String],
    props: &[MixProposal],
) -> Option<String> {
    let base = problem.sim(&problem.sources[0]);
    let alone: Vec<(String, f64)> = candidates
        .iter()
        .zip(&problem.sources[1..])
        .map(|(c, q)| (c.clone(), problem.sim(q) - base))
        .collect();
    let top = props.first()?;
    if top.pa <= 0.0 || alone.iter().any(|(_, pa)| *pa > 0.0) {
        return None;
    }
    Some(format!(
        "no candidate alone is closer to T than P (PA {}), yet the top mixture's PA is {:+.5}: a blend can lie closer to T than any of its parts, since sim is not linear in the weights",
        alone
            .iter()
            .map(|(c, pa)| format!("{c} {pa:+.5}"))
            .collect::<Vec<_>>()
            .join(", "),
        top.pa
    ))
}

/// A source's size: `available` (the user's, else the card's) or, failing both, the tokens
/// counted in its profile, with a note when that profile is a sample or cut documents.
fn source_info(
    name: &str,
    p: &Profile,
    available: Option<f64>,
    notes: &mut Vec<String>,
) -> SourceInfo {
    let available = available.unwrap_or_else(|| {
        let m = &p.meta;
        let partial = m.max_docs.is_some_and(|d| p.totals.documents >= d)
            || m.max_tokens_per_doc.is_some()
            || m.max_chars.is_some();
        if partial {
            notes.push(format!(
                "`{name}`: available tokens = {} counted in its profile, which may be a sample or cut documents; pass --available {name}=TOKENS",
                p.totals.tokens
            ));
        }
        p.totals.tokens as f64
    });
    SourceInfo {
        name: name.to_string(),
        available,
        mean_doc_tokens: p.totals.tokens as f64 / p.totals.documents.max(1) as f64,
    }
}

/// Searches mixtures for every start fraction in `starts` and specialized-share cap up to the
/// timing rule's, returns proposals ranked by PA (ties: closer to P first), Pareto front marked.
///
/// The steps: [`Search::grid`] (start × share cap), [`Search::bounds`] (each source's weight
/// range there), [`Objective::optimize`] (the best weights within them), [`dedup_ranked`]
/// (one proposal per weight vector) and [`mark_pareto`].
pub fn suggest(
    problem: &Objective,
    to_p: &Objective,
    sources: &[SourceInfo],
    budget: &Budget,
    rule: &TimingRule,
    starts: &[f64],
    progress: &dyn crate::util::progress::Progress,
) -> Result<Vec<MixProposal>> {
    use rayon::prelude::*;
    let search = Search {
        to_p,
        sources,
        budget,
        rule,
        sim_p: problem.sim(&problem.sources[0]),
    };
    let grid = search.grid(starts);
    progress.start_counting("searching mixtures", grid.len() as u64, "starts × shares");
    let results: Vec<Result<MixProposal>> = grid
        .par_iter()
        .map(|&(f, share)| {
            crate::util::progress::check_interrupt()?;
            let (lower, upper) = search
                .bounds(f, share)
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let found = problem.optimize(&lower, &upper);
            progress.advance(1, 0, 0);
            let (w, sim) = found?;
            Ok(search.proposal(f, w, sim))
        })
        .collect();
    progress.finish();
    let mut props: Vec<MixProposal> = Vec::new();
    let mut first_err = None;
    for r in results {
        match r {
            Ok(p) => props.push(p),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if props.is_empty() {
        return Err(search.no_feasible_start(starts, first_err));
    }
    let mut props = dedup_ranked(props);
    mark_pareto(&mut props);
    Ok(props)
}

/// One search: the sources, the constraints they are searched under, and what PA and the
/// distance from P are measured against.
struct Search<'a> {
    to_p: &'a Objective,
    sources: &'a [SourceInfo],
    budget: &'a Budget,
    rule: &'a TimingRule,
    /// sim(P, T), the baseline of every PA.
    sim_p: f64,
}

impl Search<'_> {
    /// The largest specialized share allowed at start fraction `f`.
    fn max_share(&self, f: f64) -> f64 {
        self.rule.max_weight(f).min(1.0 - self.budget.min_general)
    }

    /// (start fraction, specialized-share cap) pairs to optimise: a fixed ladder of caps
    /// below each start's largest share, and that share itself.
    fn grid(&self, starts: &[f64]) -> Vec<(f64, f64)> {
        let mut jobs = Vec::new();
        for &f in starts {
            let wmax = self.max_share(f);
            for s in [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] {
                if s < wmax - 1e-12 {
                    jobs.push((f, s));
                }
            }
            jobs.push((f, wmax));
        }
        jobs
    }

    /// Start step, tokens before it (P alone) and tokens from it to the end, at fraction `f`.
    fn split(&self, f: f64) -> (f64, f64, f64) {
        let b = self.budget;
        let start = (f * b.total_steps as f64).round();
        let mid_tokens = (b.total_steps as f64 - start) * b.tokens_per_step as f64;
        (start, start * b.tokens_per_step as f64, mid_tokens)
    }

    /// Each source's weight range at start `f` with specialized share at most `share`: the
    /// general share's floor from `share` and --min-general, every cap from available tokens ×
    /// max repeat (P's pretraining tokens count against its own). Infeasible when P's floor
    /// is above its cap or the caps sum below 1.
    fn bounds(&self, f: f64, share: f64) -> std::result::Result<(Vec<f64>, Vec<f64>), Infeasible> {
        let (budget, sources) = (self.budget, self.sources);
        let (_, pre_tokens, mid_tokens) = self.split(f);
        let n = sources.len();
        let mut lower = vec![0.0; n];
        let mut upper = vec![1.0; n];
        lower[0] = (1.0 - share).max(budget.min_general);
        for (i, s) in sources.iter().enumerate() {
            let cap = s.available * budget.max_repeat - if i == 0 { pre_tokens } else { 0.0 };
            upper[i] = if mid_tokens > 0.0 {
                (cap / mid_tokens).clamp(0.0, 1.0)
            } else {
                1.0
            };
        }
        if upper[0] < lower[0] {
            return Err(self.general_share_infeasible(f, lower[0], upper[0]));
        }
        let su: f64 = upper.iter().sum();
        if su < 1.0 - 1e-12 {
            let caps: Vec<String> = sources
                .iter()
                .zip(&upper)
                .map(|(s, u)| format!("{} {:.3}", s.name, u))
                .collect();
            return Err(Infeasible {
                shortfall: 1.0 - su,
                message: format!(
                    "infeasible at start {:.0}% of the run: with at most {} repeats the sources can supply only {:.1}% of the {:.3e} tokens from the start step to the end (shares: {}); short by {:.1} points: raise --max-repeat or --available, or start later",
                    f * 100.0, budget.max_repeat, su * 100.0, mid_tokens, caps.join(", "), (1.0 - su) * 100.0
                ),
            });
        }
        Ok((lower, upper))
    }

    /// P cannot supply its floor share at start `f`: name the constraint that sets the floor.
    fn general_share_infeasible(&self, f: f64, floor: f64, cap: f64) -> Infeasible {
        let (budget, rule, p) = (self.budget, self.rule, &self.sources[0]);
        let by_rule = 1.0 - rule.max_weight(f);
        let (why, remedy) = if budget.min_general > 0.0 && budget.min_general >= by_rule - 1e-12 {
            (
                format!("--min-general {}", budget.min_general),
                "lower --min-general".to_string(),
            )
        } else {
            (
                format!(
                    "the timing rule ({}), which allows at most {:.1}% specialized data at this start",
                    rule.source,
                    rule.max_weight(f) * 100.0
                ),
                "start earlier (--start), where the timing rule allows more specialized data".to_string(),
            )
        };
        Infeasible {
            shortfall: floor - cap,
            message: format!(
                "infeasible at start {:.0}% of the run: `{}` must supply at least {:.1}% of the midtraining tokens (the general share, set by {why}), but {:.3e} available tokens × {} repeats allow {:.1}% (short by {:.1} points); raise --available {}=TOKENS or --max-repeat, or {remedy}",
                f * 100.0, p.name, floor * 100.0, p.available, budget.max_repeat, cap * 100.0, (floor - cap) * 100.0, p.name
            ),
        }
    }

    /// The proposal of weights `w` (sim(q, T) = `sim`) starting at fraction `f`.
    fn proposal(&self, f: f64, w: Vec<f64>, sim: f64) -> MixProposal {
        let (sources, budget) = (self.sources, self.budget);
        let total_tokens = budget.total_steps as f64 * budget.tokens_per_step as f64;
        let start = (f * budget.total_steps as f64).round() as u64;
        let mid = (budget.total_steps - start) as f64 * budget.tokens_per_step as f64;
        let tokens: Vec<(String, f64)> = sources
            .iter()
            .zip(&w)
            .enumerate()
            .map(|(i, (s, wi))| {
                let before = if i == 0 { total_tokens - mid } else { 0.0 };
                (s.name.clone(), wi * mid + before)
            })
            .collect();
        let repetition = tokens
            .iter()
            .zip(sources)
            .map(|((n, t), s)| {
                let r = if s.available > 0.0 {
                    t / s.available
                } else {
                    f64::INFINITY
                };
                (n.clone(), r)
            })
            .collect();
        MixProposal {
            start_step: start,
            start_fraction: f,
            weights: sources
                .iter()
                .zip(&w)
                .map(|(s, x)| (s.name.clone(), *x))
                .collect(),
            sim,
            pa: sim - self.sim_p,
            distance_from_p: 1.0 - self.to_p.sim(&self.to_p.blend(&w)),
            tokens,
            repetition,
            pareto: false,
            max_specialized: self.rule.max_weight(f),
            predicted_ri: None,
        }
    }

    /// Why no start admits a mixture: the start that came closest, at its largest share.
    fn no_feasible_start(&self, starts: &[f64], first_err: Option<anyhow::Error>) -> anyhow::Error {
        let closest = starts
            .iter()
            .filter_map(|&f| self.bounds(f, self.max_share(f)).err())
            .min_by(|a, b| a.shortfall.total_cmp(&b.shortfall));
        match (closest, first_err) {
            (Some(c), _) if starts.len() > 1 => anyhow::anyhow!(
                "no start from {:.0}% to {:.0}% of the run is feasible; the closest: {}",
                starts[0] * 100.0,
                starts[starts.len() - 1] * 100.0,
                c.message
            ),
            (Some(c), _) => anyhow::anyhow!(c.message),
            (None, Some(e)) => e,
            (None, None) => anyhow::anyhow!("no start fraction to search"),
        }
    }
}

/// Two proposals are one mixture when no source's weight differs by this much or more (the
/// table prints five digits; optimizer runs from different start shares can land a few
/// millionths apart).
pub const SAME_MIXTURE_TOLERANCE: f64 = 1e-4;

/// Ranks proposals by PA (ties: closer to P, then earlier) and keeps one per mixture (weights
/// within [`SAME_MIXTURE_TOLERANCE`]): the same weights at several starts keep the earliest,
/// since early introduction tolerates weight best.
pub fn dedup_ranked(mut props: Vec<MixProposal>) -> Vec<MixProposal> {
    props.sort_by(|a, b| {
        b.pa.total_cmp(&a.pa)
            .then(a.distance_from_p.total_cmp(&b.distance_from_p))
            .then(a.start_step.cmp(&b.start_step))
    });
    let mut kept: Vec<MixProposal> = Vec::new();
    for p in props {
        let same = |k: &MixProposal| {
            k.weights
                .iter()
                .zip(&p.weights)
                .all(|(x, y)| (x.1 - y.1).abs() < SAME_MIXTURE_TOLERANCE)
        };
        if !kept.iter().any(same) {
            kept.push(p);
        }
    }
    kept
}

/// Marks the proposals no other one dominates in (higher PA, smaller distance from P).
pub fn mark_pareto(props: &mut [MixProposal]) {
    for i in 0..props.len() {
        let dominated = props.iter().any(|o| {
            o.pa >= props[i].pa - 1e-12
                && o.distance_from_p <= props[i].distance_from_p + 1e-12
                && (o.pa > props[i].pa + 1e-12
                    || o.distance_from_p < props[i].distance_from_p - 1e-12)
        });
        props[i].pareto = !dominated;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_by_hand() {
        // Onto the plain simplex: (0.5, 0.5) + shift → (0.5, 0.5); (2, 0) → (1, 0).
        let w = project(&[2.0, 0.0], &[0.0, 0.0], &[1.0, 1.0]);
        assert!((w[0] - 1.0).abs() < 1e-12 && w[1].abs() < 1e-12);
        let w = project(&[0.3, 0.3, 0.9], &[0.0, 0.0, 0.0], &[1.0, 1.0, 0.5]);
        // Third capped at 0.5; the other two share 0.5 equally.
        assert!(
            (w[2] - 0.5).abs() < 1e-12 && (w[0] - 0.25).abs() < 1e-12,
            "{w:?}"
        );
        let w = project(&[0.0, 1.0], &[0.4, 0.0], &[1.0, 1.0]);
        assert!(
            (w[0] - 0.4).abs() < 1e-12 && (w[1] - 0.6).abs() < 1e-12,
            "{w:?}"
        );
    }

    #[test]
    fn timing_rule_interpolates() {
        let r = TimingRule::default();
        assert_eq!(r.max_weight(0.05), 0.8);
        assert!((r.max_weight(0.46) - 0.45).abs() < 1e-12);
        assert!((r.max_weight(0.82) - 0.1).abs() < 1e-12);
        assert_eq!(r.max_weight(1.0), 0.05);
    }

    #[test]
    fn recovers_a_known_blend_under_smooth_metrics() {
        // T is exactly 0.3·P + 0.7·M: every smooth metric peaks at w = (0.3, 0.7).
        let p = [0.5, 0.3, 0.2, 0.0, 0.0];
        let m = [0.0, 0.1, 0.2, 0.3, 0.4];
        let t: Vec<f64> = p.iter().zip(&m).map(|(a, b)| 0.3 * a + 0.7 * b).collect();
        for metric in [Metric::Cosine, Metric::Jsd, Metric::JsSim, Metric::Paper] {
            let prob = Objective::new(&[&p, &m], &t, metric).unwrap();
            let (w, s) = prob.optimize(&[0.0, 0.0], &[1.0, 1.0]).unwrap();
            assert!(
                (w[0] - 0.3).abs() < 1e-3 && (w[1] - 0.7).abs() < 1e-3,
                "{metric}: {w:?}"
            );
            let best = if metric == Metric::Jsd { 0.0 } else { 1.0 };
            assert!((s - best).abs() < 1e-6, "{metric}: {s}");
            // A bound that cuts the optimum is met at the boundary.
            let (w, _) = prob.optimize(&[0.5, 0.0], &[1.0, 1.0]).unwrap();
            assert!((w[0] - 0.5).abs() < 1e-9, "{metric}: {w:?}");
        }
    }

    #[test]
    fn tokens_of_inactive_sources_do_not_stall_the_search() {
        // Token 3 is used only by M2, which the best support leaves out; T = 0.2·P + 0.8·M1.
        let p = [0.6, 0.4, 0.0, 0.0];
        let m1 = [0.0, 0.2, 0.8, 0.0];
        let m2 = [0.0, 0.0, 0.0, 1.0];
        let t: Vec<f64> = (0..4).map(|i| 0.2 * p[i] + 0.8 * m1[i]).collect();
        for metric in [Metric::Paper, Metric::JsSim] {
            let prob = Objective::new(&[&p, &m1, &m2], &t, metric).unwrap();
            let (w, _) = prob.optimize(&[0.0, 0.0, 0.0], &[1.0, 1.0, 1.0]).unwrap();
            assert!(
                (w[0] - 0.2).abs() < 1e-3 && (w[1] - 0.8).abs() < 1e-3 && w[2] < 1e-9,
                "{metric}: {w:?}"
            );
        }
    }

    #[test]
    fn infeasible_bounds_say_by_how_much() {
        let prob =
            Objective::new(&[&[1.0, 0.0], &[0.0, 1.0]], &[0.5, 0.5], Metric::Cosine).unwrap();
        let e = prob
            .optimize(&[0.0, 0.0], &[0.5, 0.2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("short of 1 by 0.3000"), "{e}");
        assert!(Objective::new(&[&[1.0]], &[1.0], Metric::Kl).is_err());
    }

    /// Proposals whose weights all lie within SAME_MIXTURE_TOLERANCE are one (the higher PA,
    /// then the earlier start, kept); a difference of twice the tolerance keeps both.
    #[test]
    fn near_equal_mixtures_are_one_proposal() {
        let p = |start: u64, w: f64, pa: f64| MixProposal {
            start_step: start,
            start_fraction: 0.1,
            weights: vec![("p".into(), w), ("m".into(), 1.0 - w)],
            sim: pa,
            pa,
            distance_from_p: 0.5,
            tokens: vec![],
            repetition: vec![],
            pareto: false,
            max_specialized: 0.8,
            predicted_ri: None,
        };
        // 0.302340 and 0.302345: the table's five digits show both as 0.30234.
        let kept = dedup_ranked(vec![p(10, 0.302340, 0.1), p(10, 0.302345, 0.1)]);
        assert_eq!(kept.len(), 1);
        let kept = dedup_ranked(vec![p(20, 0.30234, 0.1), p(10, 0.30238, 0.1)]);
        assert_eq!((kept.len(), kept[0].start_step), (1, 10));
        let kept = dedup_ranked(vec![
            p(10, 0.3, 0.1),
            p(10, 0.3 + 2.0 * SAME_MIXTURE_TOLERANCE, 0.2),
        ]);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].pa, 0.2);
    }

    /// The search says what it does while it works: one counted stage over its grid of
    /// (start, share cap) points, advanced once per point.
    #[test]
    fn the_search_reports_its_progress() {
        use std::sync::Mutex;
        #[derive(Default)]
        struct Seen(Mutex<(String, u64, u64, bool)>);
        impl crate::util::progress::Progress for Seen {
            fn start_counting(&self, label: &str, total: u64, _unit: &str) {
                let mut s = self.0.lock().unwrap();
                (s.0, s.1) = (label.to_string(), total);
            }
            fn advance(&self, n: u64, _: u64, _: u64) {
                self.0.lock().unwrap().2 += n;
            }
            fn finish(&self) {
                self.0.lock().unwrap().3 = true;
            }
        }
        let p = [0.5, 0.5, 0.0];
        let m = [0.0, 0.5, 0.5];
        let problem = Objective::new(&[&p, &m], &[0.2, 0.4, 0.4], Metric::Cosine).unwrap();
        let to_p = Objective::new(&[&p, &m], &p, Metric::Cosine).unwrap();
        let src = |name: &str| SourceInfo {
            name: name.into(),
            available: 1e9,
            mean_doc_tokens: 100.0,
        };
        let budget = Budget {
            total_steps: 100,
            tokens_per_step: 10,
            max_repeat: 4.0,
            min_general: 0.2,
        };
        let seen = Seen::default();
        let starts = [0.1, 0.5];
        let props = suggest(
            &problem,
            &to_p,
            &[src("p"), src("m")],
            &budget,
            &TimingRule::default(),
            &starts,
            &seen,
        )
        .unwrap();
        assert!(!props.is_empty());
        let (label, total, advanced, finished) = seen.0.into_inner().unwrap();
        assert_eq!(label, "searching mixtures");
        assert!(total >= starts.len() as u64, "{total}");
        assert_eq!((advanced, finished), (total, true));
    }
}
