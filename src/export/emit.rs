//! Exports of a mixture proposal to trainer configs. Each states its units and conversion.

use anyhow::{bail, Result};

use crate::analysis::mix::{MixProposal, SourceInfo};

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

/// A source's files in a trainer format: (paths as written, tokens), or the command that makes
/// them.
pub type SourceFiles<'a> = &'a dyn Fn(&str) -> std::result::Result<(Vec<String>, u64), String>;

/// Where a trainer format's files of each source are: `--data DIR` of `suggest-mix`, what
/// `mtkit tokenize -o DIR --format F` wrote there.
pub struct TokenizedData<'a> {
    /// The folder as written in the export.
    pub dir: &'a str,
    /// Its files per source: (paths as written, tokens), or None with the command that makes
    /// them.
    pub files: SourceFiles<'a>,
}

/// `--emit olmo-core`: an OLMo-core `SourceMixtureDatasetConfig` (olmo_core.data.source_mixture,
/// with `_CLASS_` keys so that `SourceMixtureDatasetConfig.from_dict` builds it) for the
/// midtraining tokens, each source's numpy files listed with their tokens (a source not yet
/// tokenized in that format: a glob of the files `mtkit tokenize` will write, and the command).
/// Units: target_ratio is a token share; max_repetition_ratio how many times a source may be
/// repeated; requested_tokens the tokens from the start step to the end; global_batch_size the
/// tokens of one step.
pub fn olmo_core(
    p: &MixProposal,
    max_repeat: f64,
    tokens_per_step: u64,
    mid_tokens: u64,
    data: &TokenizedData<'_>,
) -> Result<String> {
    let mut notes = Vec::new();
    let mut sources = Vec::new();
    for (n, w) in rounded(&p.weights, 6) {
        let paths = match (data.files)(&n) {
            Ok((paths, tokens)) => {
                notes.push(format!("# {n}: {tokens} tokens in {} file(s)", paths.len()));
                paths
            }
            Err(command) => {
                notes.push(format!("# {n}: not tokenized as olmo-core yet: {command}"));
                vec![format!("{}/{n}/part-*.npy", data.dir)]
            }
        };
        sources.push(serde_json::json!({
            "_CLASS_": "olmo_core.data.source_mixture.SourceMixtureConfig",
            "source_name": n,
            "target_ratio": w,
            "max_repetition_ratio": max_repeat,
            "paths": paths,
        }));
    }
    let doc = serde_json::json!({
        "source_mixture_config": {
            "_CLASS_": "olmo_core.data.source_mixture.SourceMixtureDatasetConfig",
            "source_list": {
                "_CLASS_": "olmo_core.data.source_mixture.SourceMixtureList",
                "sources": sources,
            },
            "requested_tokens": mid_tokens,
            "global_batch_size": tokens_per_step,
            "seed": 42,
        }
    });
    Ok(format!(
        "# OLMo-core source mixture from `mtkit suggest-mix` (start step {}).\n# Units: target_ratio = share of tokens; max_repetition_ratio = passes over a source;\n# requested_tokens = tokens from the start step on; global_batch_size = tokens per step.\n# Load: SourceMixtureDatasetConfig.from_dict(yaml.safe_load(f)[\"source_mixture_config\"])\n{}\n{}",
        p.start_step,
        notes.join("\n"),
        serde_yaml::to_string(&doc)?
    ))
}

/// `--emit megatron`: the `--data-path` weight/prefix list. Megatron blends by samples
/// (sequences of fixed length), so sample shares equal token shares. With `data`, the prefixes
/// are the indexed datasets `mtkit tokenize --format megatron` wrote there (a source not yet
/// tokenized is named with the command that makes it). Megatron splits `--data-path` on
/// whitespace and its launch scripts and YAML configs read `#` as a comment, so a prefix that
/// holds either is refused with the reason rather than written to break there.
pub fn megatron(p: &MixProposal, data: Option<&TokenizedData<'_>>) -> Result<String> {
    let mut notes = Vec::new();
    let parts: Vec<String> = rounded(&p.weights, 6)
        .into_iter()
        .map(|(n, w)| match data {
            None => format!("{w} {n}_text_document"),
            Some(d) => {
                if let Err(command) = (d.files)(&n) {
                    notes.push(format!("# {n}: not tokenized as megatron yet: {command}\n"));
                }
                format!("{w} {}/{n}/{n}_text_document", d.dir)
            }
        })
        .collect();
    for part in &parts {
        let prefix = part.split_once(' ').map_or(part.as_str(), |x| x.1);
        if prefix.chars().any(|c| c.is_whitespace() || c == '#') {
            bail!(
                "Megatron-LM's --data-path cannot hold the prefix `{prefix}`: it splits the list on whitespace, and `#` starts a comment in its scripts and YAML configs; use a --data folder and corpus names without spaces or `#` (a path corpus is named after its file: rename the file, or give it a card)"
            );
        }
    }
    Ok(format!("# Megatron-LM blend from `mtkit suggest-mix`. Units: sample shares (fixed-length samples: = token shares).\n{}--data-path {}\n", notes.concat(), parts.join(" ")))
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
/// (token shares), on its own last line. With `data`, comment lines before it name the litdata
/// folders `mtkit tokenize --format litdata` wrote there (or the command that makes them) and
/// the litdata mixture that streams them in these shares.
pub fn litgpt(p: &MixProposal, data: Option<&TokenizedData<'_>>) -> String {
    let w = rounded(&p.weights, 6);
    let parts: Vec<String> = w.iter().map(|(n, w)| format!("{n}:{w}")).collect();
    let mut s = String::new();
    if let Some(d) = data {
        s.push_str("# LitGPT (litdata) mixture from `mtkit suggest-mix`. Units: token shares.\n");
        let mut dirs = Vec::new();
        for (n, _) in &w {
            let dir = format!("{}/{n}", d.dir);
            match (d.files)(n) {
                Ok((_, tokens)) => s.push_str(&format!("# {n}: {dir} ({tokens} tokens)\n")),
                Err(command) => s.push_str(&format!(
                    "# {n}: {dir}, not tokenized as litdata yet: {command}\n"
                )),
            }
            dirs.push(format!(
                "StreamingDataset({dir:?}, item_loader=TokensLoader(block_size=SEQ_LEN + 1))"
            ));
        }
        s.push_str(&format!(
            "# from litdata import CombinedStreamingDataset, StreamingDataset, TokensLoader\n# CombinedStreamingDataset([{}], weights=[{}], iterate_over_all=False)\n",
            dirs.join(", "),
            w.iter().map(|x| x.1.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    s.push_str(&parts.join(","));
    s.push('\n');
    s
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

/// The trainer configs `suggest-mix --emit` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// `mtkit train`'s run config.
    Mtkit,
    /// OLMo-core 3.0's SourceMixtureDatasetConfig.
    OlmoCore,
    /// Megatron-LM's --data-path weights.
    Megatron,
    /// Hugging Face datasets' interleave_datasets.
    Hf,
    /// LitGPT's CombinedStreamingDataset.
    Litgpt,
}

impl std::str::FromStr for Emit {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Emit> {
        <Emit as clap::ValueEnum>::from_str(s, true).map_err(|_| {
            anyhow::anyhow!(
                "unknown export `{s}` (expected mtkit, olmo-core, megatron, hf or litgpt)"
            )
        })
    }
}

/// A proposal with what every export needs besides it: the sources, the target and the
/// budget. Serialized whole into the Python package's proposals table, so that any row of it
/// exports to the same text as `suggest-mix --emit`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Exportable {
    pub proposal: MixProposal,
    pub sources: Vec<SourceInfo>,
    /// The fine-tuning target (the SFT source of the mtkit export).
    pub target: String,
    pub total_steps: u64,
    pub tokens_per_step: u64,
    pub max_repeat: f64,
}

/// The settings of an export that are not the proposal's (the `suggest-mix` options of the
/// same names).
#[derive(Clone, Debug)]
pub struct EmitOptions {
    /// mtkit export: model preset.
    pub preset: String,
    /// mtkit and olmo-core exports: sequence length.
    pub seq_len: u64,
    /// Folder of tokenized corpora (see `suggest-mix --data`).
    pub data: Option<String>,
    /// mtkit export: peak learning rate.
    pub lr: f64,
    /// mtkit export: SFT epochs on the target.
    pub sft_epochs: f64,
    /// What the `mtkit tokenize` command a note suggests (for a source not yet tokenized in
    /// `data`) must repeat so that it works as pasted: the options that said where the corpora
    /// are and which tokenizer counts (` --catalog FILE --tokenizer FILE`), shell-quoted, each
    /// with its leading space; empty when the defaults were used.
    pub tokenize_args: String,
}

/// `x`'s proposal as a config of trainer `e`: the text `suggest-mix --emit` prints.
pub fn emit(e: Emit, x: &Exportable, o: &EmitOptions) -> Result<String> {
    use crate::export::tokens::trainer_formats::Format;
    let top = &x.proposal;
    if top.start_step > x.total_steps {
        bail!(
            "the proposal starts at step {} of a {}-step run",
            top.start_step,
            x.total_steps
        );
    }
    let mid_tokens = (x.total_steps - top.start_step) * x.tokens_per_step;
    Ok(match e {
        Emit::Mtkit => mtkit(
            top,
            &RunExport {
                preset: o.preset.clone(),
                seq_len: o.seq_len,
                data: o.data.clone().unwrap_or_else(|| "tokens".into()),
                lr: o.lr,
                sft_epochs: o.sft_epochs,
                target: x.target.clone(),
                total_steps: x.total_steps,
                tokens_per_step: x.tokens_per_step,
            },
        )?,
        Emit::OlmoCore => {
            let dir = o.data.clone().unwrap_or_else(|| "tokens".into());
            let files = tokenized(&dir, Format::OlmoCore, &o.tokenize_args);
            let data = TokenizedData {
                dir: &dir,
                files: &files,
            };
            olmo_core(top, x.max_repeat, x.tokens_per_step, mid_tokens, &data)?
        }
        Emit::Megatron => match &o.data {
            None => megatron(top, None)?,
            Some(dir) => {
                let files = tokenized(dir, Format::Megatron, &o.tokenize_args);
                megatron(top, Some(&TokenizedData { dir, files: &files }))?
            }
        },
        Emit::Hf => hf(top, &x.sources)?,
        Emit::Litgpt => match &o.data {
            None => litgpt(top, None),
            Some(dir) => {
                let files = tokenized(dir, Format::Litdata, &o.tokenize_args);
                litgpt(top, Some(&TokenizedData { dir, files: &files }))
            }
        },
    })
}

/// A source's files in `format` under `dir` (paths as `dir/NAME/FILE`, total tokens), or the
/// `mtkit tokenize` command that writes them (with `extra`, [`EmitOptions::tokenize_args`]).
fn tokenized<'a>(
    dir: &'a str,
    format: crate::export::tokens::trainer_formats::Format,
    extra: &'a str,
) -> impl Fn(&str) -> std::result::Result<(Vec<String>, u64), String> + 'a {
    move |name: &str| {
        crate::export::tokens::trainer_formats::files_of(std::path::Path::new(dir), name, format)
            .map(|(_, m)| {
                let paths = m
                    .files
                    .iter()
                    .map(|f| format!("{dir}/{name}/{}", f.file))
                    .collect();
                (paths, m.tokens)
            })
            .map_err(|_| {
                format!(
                    "mtkit tokenize {name} -o {dir} --format {}{extra}",
                    format.name()
                )
            })
    }
}

/// `found`'s proposals as a table, one row each: `rank`, `start_step`, `start_fraction`, one
/// column of token weights per source (P first, named as the sources), `sim`, `pa`,
/// `distance_from_p`, `pareto`, `max_specialized`, with a fit `predicted_ri`, `ri_lo`,
/// `ri_hi`, and last `proposal`: the row's [`Exportable`] as JSON, which [`emit`] takes.
pub fn proposals_frame(
    found: &crate::analysis::mix::Suggestion,
    request: &crate::analysis::mix::Request,
) -> Result<polars::prelude::DataFrame> {
    use polars::prelude::{Column, DataFrame};
    let props = &found.proposals;
    let rank: Vec<u32> = (1..=props.len() as u32).collect();
    let mut columns = vec![
        Column::new("rank".into(), rank),
        Column::new(
            "start_step".into(),
            props.iter().map(|p| p.start_step).collect::<Vec<u64>>(),
        ),
        Column::new(
            "start_fraction".into(),
            props.iter().map(|p| p.start_fraction).collect::<Vec<f64>>(),
        ),
    ];
    for (i, s) in found.sources.iter().enumerate() {
        let w: Vec<f64> = props
            .iter()
            .map(|p| {
                p.weights
                    .iter()
                    .find(|(n, _)| *n == s.name)
                    .or_else(|| p.weights.get(i))
                    .map(|x| x.1)
                    .unwrap_or(0.0)
            })
            .collect();
        columns.push(Column::new(s.name.as_str().into(), w));
    }
    let floats = |f: &dyn Fn(&MixProposal) -> f64| -> Vec<f64> { props.iter().map(f).collect() };
    columns.push(Column::new("sim".into(), floats(&|p| p.sim)));
    columns.push(Column::new("pa".into(), floats(&|p| p.pa)));
    columns.push(Column::new(
        "distance_from_p".into(),
        floats(&|p| p.distance_from_p),
    ));
    columns.push(Column::new(
        "pareto".into(),
        props.iter().map(|p| p.pareto).collect::<Vec<bool>>(),
    ));
    columns.push(Column::new(
        "max_specialized".into(),
        floats(&|p| p.max_specialized),
    ));
    if props.iter().any(|p| p.predicted_ri.is_some()) {
        let part = |k: usize| -> Vec<Option<f64>> {
            props
                .iter()
                .map(|p| p.predicted_ri.map(|r| [r.0, r.1, r.2][k]))
                .collect()
        };
        columns.push(Column::new("predicted_ri".into(), part(0)));
        columns.push(Column::new("ri_lo".into(), part(1)));
        columns.push(Column::new("ri_hi".into(), part(2)));
    }
    let json: Vec<String> = props
        .iter()
        .map(|p| {
            serde_json::to_string(&Exportable {
                proposal: p.clone(),
                sources: found.sources.clone(),
                target: request.target.clone(),
                total_steps: request.budget.total_steps,
                tokens_per_step: request.budget.tokens_per_step,
                max_repeat: request.budget.max_repeat,
            })
        })
        .collect::<std::result::Result<_, _>>()?;
    columns.push(Column::new("proposal".into(), json));
    Ok(DataFrame::new_infer_height(columns)?)
}
