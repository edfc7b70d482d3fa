//! Exports of a mixture proposal to trainer configs. Each states its units and conversion.

use anyhow::{bail, Result};
use serde::Serialize;

use crate::mix::{MixProposal, SourceInfo};

/// Settings of the `mtkit` run-config export.
#[derive(Clone, Debug)]
pub struct RunExport {
    /// Model preset.
    pub preset: String,
    /// Sequence length; batch size = tokens per step / sequence length.
    pub seq_len: u64,
    /// Folder of tokenized corpora, as written in the config.
    pub data: String,
    /// Peak learning rate (cosine to lr/300, 10% warmup, as the paper).
    pub lr: f64,
    /// SFT epochs on the target.
    pub sft_epochs: f64,
    /// Target corpus (SFT source).
    pub target: String,
    /// Total steps and tokens per step.
    pub total_steps: u64,
    /// Tokens per step.
    pub tokens_per_step: u64,
}

/// Weights rounded to `digits` decimals, adjusted so that the printed values sum to exactly 1.
pub fn rounded(weights: &[(String, f64)], digits: i32) -> Vec<(String, f64)> {
    let scale = 10f64.powi(digits);
    let mut units: Vec<i64> = weights
        .iter()
        .map(|(_, w)| (w * scale).round() as i64)
        .collect();
    let diff = scale as i64 - units.iter().sum::<i64>();
    if let Some(i) = (0..units.len()).max_by(|&a, &b| weights[a].1.total_cmp(&weights[b].1)) {
        units[i] += diff;
    }
    weights
        .iter()
        .zip(units)
        .filter(|(_, u)| *u > 0)
        .map(|((n, _), u)| (n.clone(), u as f64 / scale))
        .collect()
}

fn toml_key(k: &str) -> String {
    if k.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

/// `--emit mtkit`: a run config for `mtkit train` (pretrain → midtrain at the start step →
/// SFT on the target). Units: mixture weights are token shares; a step is
/// batch_size × seq_len tokens.
pub fn mtkit(p: &MixProposal, o: &RunExport) -> Result<String> {
    if o.seq_len == 0 || o.tokens_per_step % o.seq_len != 0 {
        bail!(
            "--tokens-per-step {} is not a multiple of --seq-len {}",
            o.tokens_per_step,
            o.seq_len
        );
    }
    let batch = o.tokens_per_step / o.seq_len;
    let w = rounded(&p.weights, 6);
    let general = &p.weights[0].0;
    let mix: Vec<String> = w
        .iter()
        .map(|(n, x)| format!("{} = {x}", toml_key(n)))
        .collect();
    let warmup = (o.total_steps as f64 * 0.1).round() as u64;
    let sched = format!(
        "{{ lr = {:e}, min_lr = {:e}, warmup = {warmup}, total_steps = {} }}",
        o.lr,
        o.lr / 300.0,
        o.total_steps
    );
    let mut s = format!(
        "# mtkit run config from `mtkit suggest-mix`: PA {:.6}, start step {} of {}.\n\
         # Units: mixture weights are token shares; one step = batch_size × seq_len = {} tokens.\n\
         # Tokenize the corpora first: mtkit tokenize {} -o {}\n\
         [run]\nname = \"suggested\"\npreset = \"{}\"\nseed = 1234\ndata = {:?}\nvalidation = [{:?}, {:?}]\n\
         eval_every = {}\neval_tokens = 16384\ncheckpoint_every = {}\n\n",
        p.pa,
        p.start_step,
        o.total_steps,
        o.tokens_per_step,
        w.iter().map(|x| x.0.clone()).chain(std::iter::once(o.target.clone())).collect::<Vec<_>>().join(" "),
        o.data,
        o.preset,
        o.data,
        o.target,
        general,
        (o.total_steps / 10).max(1),
        (o.total_steps / 10).max(1),
    );
    let mid_steps = o.total_steps - p.start_step;
    if p.start_step > 0 {
        s.push_str(&format!(
            "[[phases]]\nname = \"pretrain\"\nkind = \"pretrain\"\nsteps = {}\nbatch_size = {batch}\nseq_len = {}\nmixture = {{ {} = 1.0 }}\nschedule = {sched}\n\n",
            p.start_step,
            o.seq_len,
            toml_key(general)
        ));
        s.push_str(&format!("[[phases]]\nname = \"midtrain\"\nkind = \"midtrain\"\nsteps = {mid_steps}\nmixture = {{ {} }}\nschedule = \"continue\"\n\n", mix.join(", ")));
    } else {
        s.push_str(&format!(
            "[[phases]]\nname = \"midtrain\"\nkind = \"pretrain\"\nsteps = {mid_steps}\nbatch_size = {batch}\nseq_len = {}\nmixture = {{ {} }}\nschedule = {sched}\n\n",
            o.seq_len,
            mix.join(", ")
        ));
    }
    s.push_str(&format!(
        "[[phases]]\nname = \"sft\"\nkind = \"sft\"\nepochs = {}\nsource = {:?}\nschedule = {{ lr = {:e}, min_lr = 0.0, warmup = 0 }}\n",
        o.sft_epochs, o.target, o.lr / 3.0
    ));
    Ok(s)
}

#[derive(Serialize)]
struct OlmoSource {
    source_name: String,
    target_ratio: f64,
    max_repetition_ratio: f64,
    paths: Vec<String>,
}

#[derive(Serialize)]
struct OlmoMixture {
    seed: u64,
    sequence_length: u64,
    max_tokens: u64,
    source_configs: Vec<OlmoSource>,
}

#[derive(Serialize)]
struct OlmoDoc {
    source_mixture: OlmoMixture,
}

/// `--emit olmo-core`: a source mixture (olmo_core.data.source_mixture) for the midtraining
/// tokens. Units: target_ratio is a token share; max_repetition_ratio is how many times a
/// source may be repeated; max_tokens the tokens from the start step to the end.
pub fn olmo_core(
    p: &MixProposal,
    max_repeat: f64,
    seq_len: u64,
    mid_tokens: u64,
    paths: &dyn Fn(&str) -> Vec<String>,
) -> Result<String> {
    let doc = OlmoDoc {
        source_mixture: OlmoMixture {
            seed: 42,
            sequence_length: seq_len,
            max_tokens: mid_tokens,
            source_configs: rounded(&p.weights, 6)
                .into_iter()
                .map(|(n, w)| OlmoSource {
                    paths: paths(&n),
                    source_name: n,
                    target_ratio: w,
                    max_repetition_ratio: max_repeat,
                })
                .collect(),
        },
    };
    Ok(format!(
        "# OLMo-core source mixture from `mtkit suggest-mix` (start step {}).\n# Units: target_ratio = share of tokens; max_repetition_ratio = passes over a source.\n{}",
        p.start_step,
        serde_yaml::to_string(&doc)?
    ))
}

/// `--emit megatron`: the `--data-path` weight/prefix list. Megatron blends by samples
/// (sequences of fixed length), so sample shares equal token shares.
pub fn megatron(p: &MixProposal) -> String {
    let parts: Vec<String> = rounded(&p.weights, 6)
        .into_iter()
        .map(|(n, w)| format!("{w} {n}_text_document"))
        .collect();
    format!("# Megatron-LM blend from `mtkit suggest-mix`. Units: sample shares (fixed-length samples: = token shares).\n--data-path {}\n", parts.join(" "))
}

/// `--emit hf`: probabilities for `datasets.interleave_datasets`, which samples documents:
/// pᵢ ∝ wᵢ / Lᵢ with Lᵢ a source's mean tokens per document (measured on its profile).
pub fn hf(p: &MixProposal, sources: &[SourceInfo]) -> Result<String> {
    let raw: Vec<(String, f64)> = p
        .weights
        .iter()
        .map(|(n, w)| {
            let l = sources
                .iter()
                .find(|s| &s.name == n)
                .map(|s| s.mean_doc_tokens)
                .unwrap_or(1.0)
                .max(1e-9);
            (n.clone(), w / l)
        })
        .collect();
    let z: f64 = raw.iter().map(|x| x.1).sum();
    let probs = rounded(
        &raw.iter()
            .map(|(n, x)| (n.clone(), x / z))
            .collect::<Vec<_>>(),
        6,
    );
    let lens: Vec<f64> = probs
        .iter()
        .map(|(n, _)| {
            sources
                .iter()
                .find(|s| &s.name == n)
                .map(|s| s.mean_doc_tokens)
                .unwrap_or(0.0)
        })
        .collect();
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "units": "documents",
        "conversion": "p_i proportional to w_i / L_i, w_i token share, L_i mean tokens per document",
        "datasets": probs.iter().map(|x| &x.0).collect::<Vec<_>>(),
        "probabilities": probs.iter().map(|x| x.1).collect::<Vec<_>>(),
        "mean_tokens_per_document": lens,
        "stopping_strategy": "all_exhausted",
        "seed": 42,
    }))? + "\n")
}

/// `--emit litgpt`: the weight string of the authors' trainer fork, `c4:0.8,starcoder:0.2`
/// (token shares).
pub fn litgpt(p: &MixProposal) -> String {
    let parts: Vec<String> = rounded(&p.weights, 6)
        .into_iter()
        .map(|(n, w)| format!("{n}:{w}"))
        .collect();
    parts.join(",") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_the_sum_at_one() {
        let w = vec![
            ("a".to_string(), 1.0 / 3.0),
            ("b".to_string(), 1.0 / 3.0),
            ("c".to_string(), 1.0 / 3.0),
        ];
        let r = rounded(&w, 2);
        let sum: f64 = r.iter().map(|x| (x.1 * 100.0).round()).sum();
        assert_eq!(sum, 100.0);
    }
}
