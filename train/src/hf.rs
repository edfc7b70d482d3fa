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
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::model::ModelSpec;

/// The model weights' file in an exported folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// AdamW's moments and step count, for runs that continue from an exported folder.
pub const OPTIMIZER_FILE: &str = "mtkit-optimizer.safetensors";
/// The weights of checkpoints saved before safetensors (a torch.save pickle).
pub const PICKLE_FILE: &str = "pytorch_model.bin";
/// transformers' name prefix of the decoder's parameters.
const DECODER_PREFIX: &str = "gpt_neox.";

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
}

/// Reads `dir/config.json` as a GPT-NeoX shape, refusing (by key) what mtkit's model cannot
/// represent. Shape keys must be present: transformers' defaults for them are those of
/// GPT-NeoX-20B, so a config without them is almost certainly a broken conversion.
pub fn read_config(dir: &Path) -> Result<HfModel> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let cfg: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let bad = |key: &str, why: String| anyhow!("{}: `{key}` {why}", path.display());
    let model_type = cfg.get("model_type").and_then(Value::as_str).unwrap_or("");
    if model_type != "gpt_neox" {
        bail!(bad(
            "model_type",
            format!("is {model_type:?}; mtkit's model is GPT-NeoX (`gpt_neox`, as Pythia)")
        ));
    }
    let int = |key: &str| -> Result<i64> {
        match cfg.get(key) {
            Some(v) => v
                .as_i64()
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(key, format!("is {v}; it must be a positive integer"))),
            None => Err(bad(
                key,
                "is missing; mtkit needs every shape key set (transformers would silently take GPT-NeoX-20B's value)".into(),
            )),
        }
    };
    let float = |v: Option<&Value>, key: &str, default: f64| -> Result<f64> {
        match v {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(key, format!("is {v}; it must be a number"))),
        }
    };
    let flag = |key: &str, default: bool| -> Result<bool> {
        match cfg.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| bad(key, format!("is {v}; it must be true or false"))),
        }
    };
    let (d_model, layers, heads, intermediate, vocab) = (
        int("hidden_size")?,
        int("num_hidden_layers")?,
        int("num_attention_heads")?,
        int("intermediate_size")?,
        int("vocab_size")?,
    );
    if d_model % heads != 0 {
        bail!(bad(
            "num_attention_heads",
            format!("is {heads}, which does not divide hidden_size {d_model}")
        ));
    }
    // transformers 5 keeps rotary settings in `rope_parameters`; 4 in top-level keys.
    let rope = cfg.get("rope_parameters").filter(|v| !v.is_null());
    let rope_type = rope
        .and_then(|r| r.get("rope_type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    if rope_type != "default" {
        bail!(bad(
            "rope_parameters.rope_type",
            format!("is {rope_type:?}; mtkit's rotary embedding is the default (unscaled) one")
        ));
    }
    if cfg.get("rope_scaling").is_some_and(|v| !v.is_null()) {
        bail!(bad(
            "rope_scaling",
            "is set; mtkit's rotary embedding is unscaled".into()
        ));
    }
    let rotary_pct = match rope.and_then(|r| r.get("partial_rotary_factor")) {
        Some(v) => float(Some(v), "rope_parameters.partial_rotary_factor", 0.25)?,
        None => float(cfg.get("rotary_pct"), "rotary_pct", 0.25)?,
    };
    let rotary_base = match rope.and_then(|r| r.get("rope_theta")) {
        Some(v) => float(Some(v), "rope_parameters.rope_theta", 10_000.0)?,
        None => float(cfg.get("rotary_emb_base"), "rotary_emb_base", 10_000.0)?,
    };
    if !(rotary_pct > 0.0 && rotary_pct <= 1.0) {
        bail!(bad(
            "rotary_pct",
            format!("is {rotary_pct}; it must be in (0, 1]")
        ));
    }
    let layer_norm_eps = float(cfg.get("layer_norm_eps"), "layer_norm_eps", 1e-5)?;
    let act = cfg
        .get("hidden_act")
        .and_then(Value::as_str)
        .unwrap_or("gelu");
    if act != "gelu" {
        bail!(bad(
            "hidden_act",
            format!("is {act:?}; mtkit's MLP uses the exact GELU (`gelu`, as Pythia)")
        ));
    }
    if !flag("use_parallel_residual", true)? {
        bail!(bad(
            "use_parallel_residual",
            "is false; mtkit's blocks are parallel (x + Attn(LN1 x) + MLP(LN2 x), as Pythia)"
                .into()
        ));
    }
    if flag("tie_word_embeddings", false)? {
        bail!(bad(
            "tie_word_embeddings",
            "is true; mtkit keeps the input and output embeddings separate (as Pythia)".into()
        ));
    }
    if !flag("attention_bias", true)? {
        bail!(bad(
            "attention_bias",
            "is false; mtkit's attention projections have biases (as Pythia)".into()
        ));
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    Ok(HfModel {
        spec: ModelSpec {
            preset: format!("hf:{name}"),
            layers,
            d_model,
            heads,
            vocab,
            intermediate,
            rotary_pct,
            rotary_base,
            layer_norm_eps,
        },
        eos_token_id: cfg.get("eos_token_id").and_then(Value::as_i64),
    })
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

/// The weights of a Hugging Face folder, by mtkit name, in fp32 on the CPU.
pub fn read_weights(dir: &Path) -> Result<BTreeMap<String, Tensor>> {
    let single = dir.join(WEIGHTS_FILE);
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<PathBuf> = if single.is_file() {
        vec![single]
    } else if index.is_file() {
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("cannot read {}", index.display()))?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", index.display()))?;
        let map = v
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| anyhow!("{}: no `weight_map`", index.display()))?;
        let mut names: Vec<&str> = map.values().filter_map(Value::as_str).collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(|n| dir.join(n)).collect()
    } else if dir.join(PICKLE_FILE).is_file() || dir.join("pytorch_model.bin.index.json").is_file()
    {
        // Checkpoints from before safetensors hold a torch.save pickle of an OrderedDict,
        // which LibTorch's reader does not take (it reads plain dicts only); running Python's
        // unpickler on downloaded files is what safetensors exists to avoid.
        bail!(
            "{} holds pytorch_model.bin (a torch.save pickle), which mtkit does not read; convert it once to safetensors with transformers: python -c \"from transformers import AutoModelForCausalLM as M; M.from_pretrained('{0}').save_pretrained('{0}')\"",
            dir.display()
        );
    } else {
        bail!(
            "{} has no {WEIGHTS_FILE}, model.safetensors.index.json or {PICKLE_FILE}",
            dir.display()
        );
    };
    let mut out = BTreeMap::new();
    for f in files {
        let tensors = Tensor::read_safetensors(&f)
            .map_err(|e| anyhow!("cannot read {}: {e}", f.display()))?;
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
    if out.exists() && !force {
        bail!(
            "{} already exists; remove it, choose another -o, or pass --force to replace it",
            out.display()
        );
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let name = out
        .file_name()
        .ok_or_else(|| anyhow!("-o {} names no folder", out.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.mtkit-{}.", std::process::id()))
        .suffix(".part")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a folder in {}", parent.display()))?;
    let dir = tmp.path();
    let eos = mtkit::token_files::eos_id(tokenizer).ok();
    let max_positions = src.max_seq_len.max(2048);
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
    let tmp_path = tmp.keep();
    mtkit::paths::make_readable(&tmp_path);
    if out.exists() {
        let old = parent.join(format!(".{name}.mtkit-{}.old", std::process::id()));
        std::fs::rename(out, &old)
            .with_context(|| format!("cannot move {} aside", out.display()))?;
        std::fs::rename(&tmp_path, out).with_context(|| {
            format!("cannot rename {} to {}", tmp_path.display(), out.display())
        })?;
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("cannot remove {}", old.display()))?;
    } else {
        std::fs::rename(&tmp_path, out).with_context(|| {
            format!("cannot rename {} to {}", tmp_path.display(), out.display())
        })?;
    }
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
