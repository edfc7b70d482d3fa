//! Hugging Face GPT-NeoX checkpoints in and out.
//!
//! mtkit's model is transformers' `GPTNeoXForCausalLM` with the same parameter names (under
//! `gpt_neox.`, except `embed_out`) and the same fused query_key_value layout (per head: q, k,
//! v), so conversion is renaming plus a config.json whose every shape key is written out.
//! A folder written here holds `config.json`, `generation_config.json`, `model.safetensors`
//! (fp32, metadata `format: pt`), the run's `tokenizer.json` with a `tokenizer_config.json`,
//! and `mtkit-optimizer.safetensors` (AdamW's moments), which transformers ignores and a run
//! started from the folder (`--init`) continues with.
//!
//! Import reads config.json (the transformers 4 keys `rotary_pct`/`rotary_emb_base` or the
//! transformers 5 `rope_parameters`), refuses with the key's name what mtkit's model cannot
//! represent, and reads `model.safetensors` or the shards of `model.safetensors.index.json`
//! in any float dtype (converted to fp32). Pickled `pytorch_model.bin` checkpoints are refused
//! with the one-line conversion that turns them into safetensors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use mtkit::hf::checkpoint;
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::model::ModelSpec;

/// The model weights' file in an exported folder.
pub const WEIGHTS_FILE: &str = checkpoint::WEIGHTS_FILE;
/// AdamW's moments and step count, for runs that continue from an exported folder.
pub const OPTIMIZER_FILE: &str = "mtkit-optimizer.safetensors";
/// The weights of checkpoints saved before safetensors (a torch.save pickle).
pub const PICKLE_FILE: &str = "pytorch_model.bin";
/// transformers' name prefix of the decoder's parameters.
const DECODER_PREFIX: &str = checkpoint::DECODER_PREFIX;

/// Whether `dir` looks like a Hugging Face model folder (it has a config.json).
pub fn is_hf_folder(dir: &Path) -> bool {
    dir.is_dir() && dir.join("config.json").is_file()
}

/// What a Hugging Face config.json says beyond the shape.
#[derive(Clone, Debug)]
pub struct HfModel {
    /// The shape, in mtkit's terms.
    pub spec: ModelSpec,
    /// End-of-text id, when the config names one.
    pub eos_token_id: Option<i64>,
    /// max_position_embeddings, when the config gives it: the context `model generate` keeps
    /// within.
    pub max_positions: Option<i64>,
}

/// Reads `dir/config.json` as a GPT-NeoX shape, refusing (by key) what is malformed or what
/// mtkit's model cannot represent ([`mtkit::hf::checkpoint::parse_config`]). Shape keys must be
/// present: transformers' defaults for them are those of GPT-NeoX-20B, so a config without
/// them is almost certainly a broken conversion. The weights are not looked at: use
/// [`read_model`] before building a model.
pub fn read_config(dir: &Path) -> Result<HfModel> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let s = checkpoint::parse_config(&text, &path)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    Ok(HfModel {
        spec: ModelSpec {
            preset: format!("hf:{name}"),
            layers: s.layers,
            d_model: s.d_model,
            heads: s.heads,
            vocab: s.vocab,
            intermediate: s.intermediate,
            rotary_pct: s.rotary_pct,
            rotary_base: s.rotary_base,
            layer_norm_eps: s.layer_norm_eps,
        },
        eos_token_id: s.eos_token_id,
        max_positions: s.max_positions,
    })
}

/// [`read_config`], with the shape checked against the weights' safetensors headers and the
/// machine's memory before anything is allocated: a config.json whose sizes the weights do not
/// have is refused naming the key, a truncated or damaged file naming the file.
pub fn read_model(dir: &Path) -> Result<HfModel> {
    let m = read_config(dir)?;
    let files = weight_files(dir)?;
    let mut headers = BTreeMap::new();
    for f in &files {
        headers.extend(checkpoint::read_safetensors_header(f)?);
    }
    let path = dir.join("config.json");
    let shape = checkpoint::parse_config(&std::fs::read_to_string(&path)?, &path)?;
    checkpoint::check_shape_against(&shape, &headers, &path)
        .with_context(|| format!("{} does not match its weights", dir.display()))?;
    checkpoint::check_memory(&headers, dir)?;
    Ok(m)
}

/// The safetensors files of a folder, or the error that says what it holds instead (a pickle,
/// nothing).
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let files = checkpoint::weight_files(dir)?;
    if !files.is_empty() {
        return Ok(files);
    }
    if dir.join(PICKLE_FILE).is_file() || dir.join("pytorch_model.bin.index.json").is_file() {
        // Checkpoints from before safetensors hold a torch.save pickle of an OrderedDict,
        // which LibTorch's reader does not take (it reads plain dicts only); running Python's
        // unpickler on downloaded files is what safetensors exists to avoid.
        bail!(
            "{} holds pytorch_model.bin (a torch.save pickle), which mtkit does not read; convert it once to safetensors with transformers: python -c \"from transformers import AutoModelForCausalLM as M; M.from_pretrained('{0}').save_pretrained('{0}')\"",
            dir.display()
        );
    }
    bail!(
        "{} has no {WEIGHTS_FILE}, model.safetensors.index.json or {PICKLE_FILE}",
        dir.display()
    )
}

/// transformers' name of an mtkit parameter.
pub fn hf_name(mtkit_name: &str) -> String {
    if mtkit_name.starts_with("embed_out.") {
        mtkit_name.to_string()
    } else {
        format!("{DECODER_PREFIX}{mtkit_name}")
    }
}

/// mtkit's name of a transformers tensor; `None` for buffers older transformers saved with
/// the weights (the causal mask `attention.bias`, `attention.masked_bias`, rotary `inv_freq`).
/// transformers 5 calls the output layer `lm_head` inside (and sometimes saves it so); its
/// checkpoints and transformers 4's call it `embed_out`, which is what an export writes.
fn mtkit_name(hf: &str) -> Option<String> {
    if let Some(rest) = hf.strip_prefix("lm_head.") {
        return Some(format!("embed_out.{rest}"));
    }
    let stripped = hf.strip_prefix(DECODER_PREFIX).unwrap_or(hf);
    let buffer = stripped.ends_with(".attention.bias")
        || stripped.ends_with(".attention.masked_bias")
        || stripped.ends_with("rotary_emb.inv_freq");
    (!buffer).then(|| stripped.to_string())
}

/// The weights of a Hugging Face folder, by mtkit name, in fp32 on the CPU (each file's
/// header checked first, so that a damaged one is named as such).
pub fn read_weights(dir: &Path) -> Result<BTreeMap<String, Tensor>> {
    let mut out = BTreeMap::new();
    for f in weight_files(dir)? {
        checkpoint::read_safetensors_header(&f)?;
        let tensors = Tensor::read_safetensors(&f).map_err(|e| {
            anyhow!(
                "{} is truncated or damaged (the safetensors reader says: {e})",
                f.display()
            )
        })?;
        for (name, t) in tensors {
            if let Some(n) = mtkit_name(&name) {
                if !t.is_floating_point() {
                    bail!(
                        "{}: tensor {name} is {:?}, not a float tensor",
                        f.display(),
                        t.kind()
                    );
                }
                out.insert(n, t.to_kind(Kind::Float));
            }
        }
    }
    Ok(out)
}

/// Copies `weights` into a model's parameters (sorted by name, as the trainer holds them):
/// every parameter must be there with its shape, and nothing else may be.
pub fn load_into(
    params: &mut [(String, Tensor)],
    mut weights: BTreeMap<String, Tensor>,
    source: &Path,
) -> Result<()> {
    tch::no_grad(|| -> Result<()> {
        for (name, p) in params.iter_mut() {
            let w = weights
                .remove(name.as_str())
                .ok_or_else(|| anyhow!("{}: no tensor `{}`", source.display(), hf_name(name)))?;
            if w.size() != p.size() {
                bail!(
                    "{}: tensor `{}` has shape {:?}; the model of config.json needs {:?}",
                    source.display(),
                    hf_name(name),
                    w.size(),
                    p.size()
                );
            }
            p.copy_(&w);
        }
        Ok(())
    })?;
    if let Some(extra) = weights.keys().next() {
        bail!(
            "{}: tensor `{}` is not part of a GPT-NeoX model as mtkit builds it ({} unexpected tensors)",
            source.display(),
            hf_name(extra),
            weights.len()
        );
    }
    Ok(())
}

/// AdamW's state as an exported folder holds it.
pub struct OptimizerState {
    /// First and second moments by mtkit parameter name.
    pub moments: BTreeMap<String, (Tensor, Tensor)>,
    /// AdamW's step count (bias correction).
    pub adam_t: u64,
}

/// The optimizer state of a folder exported by mtkit, if it has one.
pub fn read_optimizer(dir: &Path) -> Result<Option<OptimizerState>> {
    let path = dir.join(OPTIMIZER_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let mut tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(&path)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?
        .into_iter()
        .collect();
    let adam_t = tensors
        .remove("adam_t")
        .ok_or_else(|| anyhow!("{}: no `adam_t`", path.display()))?
        .int64_value(&[]) as u64;
    let mut moments = BTreeMap::new();
    let names: Vec<String> = tensors
        .keys()
        .filter_map(|k| k.strip_prefix("adam_m.").map(str::to_string))
        .collect();
    for n in names {
        let m = tensors.remove(&format!("adam_m.{n}"));
        let v = tensors.remove(&format!("adam_v.{n}"));
        match (m, v) {
            (Some(m), Some(v)) => {
                moments.insert(n, (m, v));
            }
            _ => bail!("{}: `adam_v.{n}` is missing", path.display()),
        }
    }
    Ok(Some(OptimizerState { moments, adam_t }))
}

/// A model to export: its shape, weights and optimizer state by mtkit name, and the identity
/// of the tokenizer it was trained with.
pub struct ExportSource {
    /// Shape.
    pub spec: ModelSpec,
    /// Weights by mtkit name.
    pub params: BTreeMap<String, Tensor>,
    /// AdamW's state, when the source is a training checkpoint.
    pub optimizer: Option<OptimizerState>,
    /// SHA-256 of the tokenizer file of the run's data, when known.
    pub tokenizer_sha256: Option<String>,
    /// End-of-text id: the data's for a checkpoint, config.json's for a Hugging Face folder.
    pub eos_id: Option<i64>,
    /// The longest sequence the model was trained on.
    pub max_seq_len: u64,
    /// config.json's max_position_embeddings, for a Hugging Face folder that gives it.
    pub max_positions: Option<i64>,
}

impl ExportSource {
    /// The model's context in positions: config.json's max_position_embeddings where a folder
    /// gives it, else the longest trained sequence or 2,048 (Pythia's), whichever is more.
    /// An export writes it as max_position_embeddings; `model generate` keeps within it.
    pub fn context(&self) -> u64 {
        match self.max_positions {
            Some(p) => p as u64,
            None => self.max_seq_len.max(2048),
        }
    }
}

/// What an export wrote.
pub struct Exported {
    /// Files in the folder.
    pub files: Vec<String>,
    /// Parameters written.
    pub parameters: i64,
}

/// transformers' config.json for `spec`, with every shape key written out.
pub fn config_json(
    spec: &ModelSpec,
    bos: Option<u32>,
    eos: Option<u32>,
    max_positions: u64,
) -> Value {
    json!({
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "hidden_size": spec.d_model,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "intermediate_size": spec.intermediate,
        "vocab_size": spec.vocab,
        "max_position_embeddings": max_positions,
        "rotary_pct": spec.rotary_pct,
        "rotary_emb_base": spec.rotary_base,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": spec.rotary_base,
            "partial_rotary_factor": spec.rotary_pct,
        },
        "use_parallel_residual": true,
        "layer_norm_eps": spec.layer_norm_eps,
        "hidden_act": "gelu",
        "attention_bias": true,
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
        "initializer_range": 0.02,
        "tie_word_embeddings": false,
        "use_cache": true,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "torch_dtype": "float32",
        "dtype": "float32",
    })
}

/// Writes `src` as a Hugging Face GPT-NeoX folder at `out`, with `tokenizer` (a tokenizer.json
/// whose SHA-256 must be the one the run's data was tokenized with, when that is known).
/// Everything is written into a temporary folder beside `out` and renamed into place; an
/// existing `out` is replaced only when `force`.
pub fn export(
    src: &ExportSource,
    tokenizer: &mtkit::tokenize::Tokenizer,
    out: &Path,
    force: bool,
) -> Result<Exported> {
    if let Some(want) = &src.tokenizer_sha256 {
        if *want != tokenizer.sha256 {
            bail!(
                "the run's data was tokenized with a tokenizer of SHA-256 {}…, not {} ({}…): pass that tokenizer.json with --tokenizer",
                &want[..16.min(want.len())],
                tokenizer.path.display(),
                &tokenizer.sha256[..16]
            );
        }
    }
    if (tokenizer.vocab_size as i64) > src.spec.vocab {
        bail!(
            "tokenizer {} has {} ids, more than the model's vocabulary ({})",
            tokenizer.path.display(),
            tokenizer.vocab_size,
            src.spec.vocab
        );
    }
    if std::fs::symlink_metadata(out).is_ok() && !force {
        bail!(
            "{} already exists; remove it, choose another -o, or pass --force to replace it",
            out.display()
        );
    }
    if out.file_name().is_none() {
        bail!("-o {} names no folder", out.display());
    }
    let tmp = mtkit::util::paths::temp_dir_for(out)?;
    let dir = tmp.path();
    let eos = mtkit::export::tokens::eos_id(tokenizer).ok();
    let max_positions = src.context();
    let mut files = Vec::new();
    let mut write_json = |file: &str, v: &Value| -> Result<()> {
        let mut text = serde_json::to_string_pretty(v)?;
        text.push('\n');
        std::fs::write(dir.join(file), text)
            .with_context(|| format!("cannot write {file} in {}", dir.display()))?;
        files.push(file.to_string());
        Ok(())
    };
    write_json(
        "config.json",
        &config_json(&src.spec, eos, eos, max_positions),
    )?;
    write_json(
        "generation_config.json",
        &json!({ "bos_token_id": eos, "eos_token_id": eos }),
    )?;
    let tok_token = eos.and_then(|id| tokenizer.id_to_token(id));
    write_json(
        "tokenizer_config.json",
        &json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": tok_token,
            "eos_token": tok_token,
            "unk_token": tok_token,
            "model_max_length": max_positions,
            "add_bos_token": false,
            "add_eos_token": false,
        }),
    )?;
    std::fs::copy(&tokenizer.path, dir.join("tokenizer.json"))
        .with_context(|| format!("cannot copy {}", tokenizer.path.display()))?;
    files.push("tokenizer.json".into());
    let named: Vec<(String, Tensor)> = src
        .params
        .iter()
        .map(|(n, t)| {
            (
                hf_name(n),
                t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous(),
            )
        })
        .collect();
    write_safetensors(&dir.join(WEIGHTS_FILE), &named)?;
    files.push(WEIGHTS_FILE.into());
    if let Some(opt) = &src.optimizer {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (n, (m, v)) in &opt.moments {
            named.push((format!("adam_m.{n}"), m.to_device(Device::Cpu).contiguous()));
            named.push((format!("adam_v.{n}"), v.to_device(Device::Cpu).contiguous()));
        }
        named.push(("adam_t".into(), Tensor::from(opt.adam_t as i64)));
        write_safetensors(&dir.join(OPTIMIZER_FILE), &named)?;
        files.push(OPTIMIZER_FILE.into());
    }
    // In place whole, replacing (with --force) whatever is there: a folder, a file, a link.
    mtkit::util::paths::install_dir(tmp, out)?;
    let parameters = src.params.values().map(|t| t.numel() as i64).sum();
    Ok(Exported { files, parameters })
}

/// Writes tensors as safetensors with the metadata transformers checks (`format: pt`).
fn write_safetensors(path: &Path, named: &[(String, Tensor)]) -> Result<()> {
    let mut bytes: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (n, t) in named {
        let dtype = match t.kind() {
            Kind::Float => safetensors::Dtype::F32,
            Kind::Int64 => safetensors::Dtype::I64,
            k => bail!("cannot write tensor {n} of kind {k:?}"),
        };
        let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
        let mut data = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.copy_data_u8(&mut data, t.numel());
        bytes.push((n.clone(), dtype, shape, data));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, dtype, shape, data)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (n.clone(), v))
                .map_err(|e| anyhow!("tensor {n}: {e:?}"))
        })
        .collect::<Result<_>>()?;
    let metadata = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    safetensors::tensor::serialize_to_file(views, &metadata, path)
        .map_err(|e| anyhow!("cannot write {}: {e:?}", path.display()))
}
