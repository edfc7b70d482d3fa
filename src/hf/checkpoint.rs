//! Hugging Face GPT-NeoX folders read as bytes, before anything is allocated: config.json into
//! a shape (refused by key where it is malformed or mtkit's model cannot represent it), the
//! headers of the safetensors files (sizes checked against the file, so that a truncated or
//! damaged file is named as such), the index's weight map (no path may leave the folder), and
//! the shape every tensor must have checked against the headers, naming the config key that
//! disagrees. The trainer (`mtkit-train`'s hf module) builds the model only after these
//! checks, so that a config.json with `hidden_size: 1e9` is an error, not an allocation
//! failure. No LibTorch here, so the parsing is fuzzed (`mtkit::fuzz::fuzz_hf_folder`).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::data::files::read_up_to;

/// The weights file of a single-file folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a sharded folder.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// transformers' name prefix of the decoder's parameters.
pub const DECODER_PREFIX: &str = "gpt_neox.";

/// A GPT-NeoX shape as config.json gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct HfShape {
    /// num_hidden_layers.
    pub layers: i64,
    /// hidden_size.
    pub d_model: i64,
    /// num_attention_heads.
    pub heads: i64,
    /// vocab_size.
    pub vocab: i64,
    /// intermediate_size.
    pub intermediate: i64,
    /// rotary_pct (or rope_parameters.partial_rotary_factor).
    pub rotary_pct: f64,
    /// rotary_emb_base (or rope_parameters.rope_theta).
    pub rotary_base: f64,
    /// layer_norm_eps.
    pub layer_norm_eps: f64,
    /// max_position_embeddings, when given.
    pub max_positions: Option<i64>,
    /// eos_token_id, when given.
    pub eos_token_id: Option<i64>,
}

/// Parses config.json's `text` (from `path`, named in errors).
pub fn parse_config(text: &str, path: &Path) -> Result<HfShape> {
    let cfg: Value = serde_json::from_str(text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let Some(obj) = cfg.as_object() else {
        let kind = match &cfg {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        bail!(
            "{} is {kind}, not a JSON object of model settings",
            path.display()
        );
    };
    let bad = |key: &str, why: String| anyhow!("{}: `{key}` {why}", path.display());
    let model_type = match obj.get("model_type") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => bail!(bad("model_type", format!("is {v}, not a string"))),
        None => bail!(bad(
            "model_type",
            "is missing; mtkit's model is GPT-NeoX (`gpt_neox`, as Pythia)".into()
        )),
    };
    if model_type != "gpt_neox" {
        bail!(bad(
            "model_type",
            format!("is {model_type:?}; mtkit's model is GPT-NeoX (`gpt_neox`, as Pythia)")
        ));
    }
    let int = |key: &str| -> Result<i64> {
        match obj.get(key) {
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
    let float = |v: Option<&Value>, key: &str| -> Result<Option<f64>> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| bad(key, format!("is {v}; it must be a number"))),
        }
    };
    let flag = |key: &str, default: bool| -> Result<bool> {
        match obj.get(key) {
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
    // transformers 5 keeps rotary settings in `rope_parameters`; 4 in top-level keys. When a
    // config has both (mtkit's exports do) they must agree: which one a reader takes differs.
    let rope = match obj.get("rope_parameters") {
        None | Some(Value::Null) => None,
        Some(Value::Object(r)) => Some(r),
        Some(v) => bail!(bad("rope_parameters", format!("is {v}, not an object"))),
    };
    let rope_type = match rope.and_then(|r| r.get("rope_type")) {
        None | Some(Value::Null) => "default".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => bail!(bad(
            "rope_parameters.rope_type",
            format!("is {v}, not a string")
        )),
    };
    if rope_type != "default" {
        bail!(bad(
            "rope_parameters.rope_type",
            format!("is {rope_type:?}; mtkit's rotary embedding is the default (unscaled) one")
        ));
    }
    if obj.get("rope_scaling").is_some_and(|v| !v.is_null()) {
        bail!(bad(
            "rope_scaling",
            "is set; mtkit's rotary embedding is unscaled".into()
        ));
    }
    let agreeing = |new_key: &str, old_key: &str, default: f64| -> Result<f64> {
        let new = float(
            rope.and_then(|r| r.get(new_key)),
            &format!("rope_parameters.{new_key}"),
        )?;
        let old = float(obj.get(old_key), old_key)?;
        match (new, old) {
            (Some(a), Some(b)) if a != b => bail!(
                "{}: `rope_parameters.{new_key}` is {a} but `{old_key}` is {b}; transformers 5 reads the first and transformers 4 the second, so mtkit refuses to guess: make them equal",
                path.display()
            ),
            (Some(a), _) => Ok(a),
            (None, Some(b)) => Ok(b),
            (None, None) => Ok(default),
        }
    };
    let rotary_pct = agreeing("partial_rotary_factor", "rotary_pct", 0.25)?;
    let rotary_base = agreeing("rope_theta", "rotary_emb_base", 10_000.0)?;
    if !(rotary_pct > 0.0 && rotary_pct <= 1.0) {
        bail!(bad(
            "rotary_pct",
            format!("is {rotary_pct}; it must be in (0, 1]")
        ));
    }
    if rotary_base <= 0.0 {
        bail!(bad(
            "rotary_emb_base",
            format!("is {rotary_base}; it must be above 0")
        ));
    }
    let layer_norm_eps = float(obj.get("layer_norm_eps"), "layer_norm_eps")?.unwrap_or(1e-5);
    if layer_norm_eps <= 0.0 {
        bail!(bad(
            "layer_norm_eps",
            format!(
                "is {layer_norm_eps}; it must be above 0 (LayerNorm divides by √(variance + eps))"
            )
        ));
    }
    let max_positions = match obj.get("max_position_embeddings") {
        None | Some(Value::Null) => None,
        Some(_) => Some(int("max_position_embeddings")?),
    };
    let act = match obj.get("hidden_act") {
        None | Some(Value::Null) => "gelu".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => bail!(bad("hidden_act", format!("is {v}, not a string"))),
    };
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
    Ok(HfShape {
        layers,
        d_model,
        heads,
        vocab,
        intermediate,
        rotary_pct,
        rotary_base,
        layer_norm_eps,
        max_positions,
        eos_token_id: obj.get("eos_token_id").and_then(Value::as_i64),
    })
}

/// One tensor of a safetensors header.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// safetensors' dtype name (F32, BF16, ...).
    pub dtype: String,
    /// Its shape.
    pub shape: Vec<u64>,
    /// The file it is in.
    pub file: PathBuf,
}

/// Bytes per element of a safetensors dtype (None: not one mtkit knows).
fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

/// The largest safetensors header read (real ones are kilobytes to a few megabytes).
const MAX_HEADER: u64 = 100 << 20;

/// Parses a safetensors header: `head` holds the file's first bytes (at least the 8-byte length
/// and the header it announces), `file_len` the file's size. Every tensor's byte range must lie
/// in the file and fit its dtype and shape; anything else is "truncated or damaged".
pub fn parse_safetensors_header(
    head: &[u8],
    file_len: u64,
    path: &Path,
) -> Result<BTreeMap<String, TensorInfo>> {
    let damaged = |why: String| anyhow!("{} is truncated or damaged: {why}", path.display());
    if head.len() < 8 || file_len < 8 {
        return Err(damaged(format!(
            "{file_len} bytes, shorter than a safetensors header"
        )));
    }
    let n = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    if n > MAX_HEADER || n > file_len - 8 {
        return Err(damaged(format!(
            "its header claims {n} bytes, but the file has {file_len}"
        )));
    }
    let body = head
        .get(8..8 + n as usize)
        .ok_or_else(|| damaged(format!("its header of {n} bytes was cut short")))?;
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| damaged(format!("its header is not valid JSON ({e})")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| damaged("its header is not a JSON object".into()))?;
    let data_len = file_len - 8 - n;
    let mut out = BTreeMap::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            continue;
        }
        let bad = |why: &str| damaged(format!("tensor `{name}`: {why}"));
        let dtype = v
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no dtype"))?;
        let size = dtype_size(dtype).ok_or_else(|| bad(&format!("unknown dtype {dtype:?}")))?;
        let shape: Vec<u64> = v
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no shape"))?
            .iter()
            .map(|d| {
                d.as_u64()
                    .ok_or_else(|| bad("a dimension is not a whole number"))
            })
            .collect::<Result<_>>()?;
        let offsets: Vec<u64> = v
            .get("data_offsets")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2)
            .ok_or_else(|| bad("no data_offsets [start, end]"))?
            .iter()
            .map(|d| {
                d.as_u64()
                    .ok_or_else(|| bad("an offset is not a whole number"))
            })
            .collect::<Result<_>>()?;
        let numel = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad("its shape overflows"))?;
        let bytes = numel
            .checked_mul(size)
            .ok_or_else(|| bad("its shape overflows"))?;
        let (start, end) = (offsets[0], offsets[1]);
        if end < start || end - start != bytes {
            return Err(bad(&format!(
                "shape {shape:?} of {dtype} needs {bytes} bytes, its offsets span {}",
                end.saturating_sub(start)
            )));
        }
        if end > data_len {
            return Err(bad(&format!(
                "its data ends at byte {end} of {data_len}: the file is cut short"
            )));
        }
        out.insert(
            name.clone(),
            TensorInfo {
                dtype: dtype.to_string(),
                shape,
                file: path.to_path_buf(),
            },
        );
    }
    Ok(out)
}

/// Reads and checks the header of the safetensors file at `path` (its first bytes only).
pub fn read_safetensors_header(path: &Path) -> Result<BTreeMap<String, TensorInfo>> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = f
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let mut first = [0u8; 8];
    let got = read_up_to(&mut f, &mut first)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let n = if got == 8 {
        u64::from_le_bytes(first)
            .min(MAX_HEADER)
            .min(len.saturating_sub(8))
    } else {
        0
    };
    let mut head = first[..got].to_vec();
    let mut rest = vec![0u8; n as usize];
    let more =
        read_up_to(&mut f, &mut rest).with_context(|| format!("cannot read {}", path.display()))?;
    head.extend_from_slice(&rest[..more]);
    parse_safetensors_header(&head, len, path)
}

/// The safetensors files of a folder: `model.safetensors`, or the files the index's
/// `weight_map` names (each a plain relative path inside the folder; one that leads out, by
/// `..`, an absolute path or a link, is refused).
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join(WEIGHTS_FILE);
    if std::fs::symlink_metadata(&single).is_ok() {
        // There: it must be readable (a link to itself, or to nothing, is named as such).
        std::fs::metadata(&single).with_context(|| format!("cannot read {}", single.display()))?;
        return Ok(vec![single]);
    }
    let index = dir.join(INDEX_FILE);
    if std::fs::symlink_metadata(&index).is_err() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&index)
        .with_context(|| format!("cannot read {}", index.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", index.display()))?;
    let map = v
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow!("{}: no `weight_map` object", index.display()))?;
    let root =
        std::fs::canonicalize(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut names: Vec<&str> = Vec::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| {
            anyhow!(
                "{}: `weight_map.{tensor}` is not a file name",
                index.display()
            )
        })?;
        let p = Path::new(file);
        let plain = !file.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            bail!(
                "{}: `weight_map.{tensor}` is {file:?}, which leaves the folder; shard files must be named inside it",
                index.display()
            );
        }
        names.push(file);
    }
    names.sort_unstable();
    names.dedup();
    let mut files = Vec::new();
    for n in names {
        let p = dir.join(n);
        let real =
            std::fs::canonicalize(&p).with_context(|| format!("cannot read {}", p.display()))?;
        if !real.starts_with(&root) {
            bail!(
                "{}: shard {n} is a link to {}, outside the folder",
                index.display(),
                real.display()
            );
        }
        files.push(p);
    }
    Ok(files)
}

/// transformers' names and the shapes a GPT-NeoX model of `shape` has, each with the config
/// keys its dimensions come from. Call after [`check_shape_against`] bounded the sizes.
fn expected(shape: &HfShape) -> Vec<(String, Vec<i64>, &'static str)> {
    let (d, f, v) = (shape.d_model, shape.intermediate, shape.vocab);
    let mut out = vec![
        (
            format!("{DECODER_PREFIX}embed_in.weight"),
            vec![v, d],
            "vocab_size × hidden_size",
        ),
        (
            "embed_out.weight".into(),
            vec![v, d],
            "vocab_size × hidden_size",
        ),
        (
            format!("{DECODER_PREFIX}final_layer_norm.weight"),
            vec![d],
            "hidden_size",
        ),
        (
            format!("{DECODER_PREFIX}final_layer_norm.bias"),
            vec![d],
            "hidden_size",
        ),
    ];
    for l in 0..shape.layers {
        let p = format!("{DECODER_PREFIX}layers.{l}.");
        for (n, s, k) in [
            ("input_layernorm.weight", vec![d], "hidden_size"),
            ("input_layernorm.bias", vec![d], "hidden_size"),
            ("post_attention_layernorm.weight", vec![d], "hidden_size"),
            ("post_attention_layernorm.bias", vec![d], "hidden_size"),
            (
                "attention.query_key_value.weight",
                vec![3 * d, d],
                "3·hidden_size × hidden_size",
            ),
            (
                "attention.query_key_value.bias",
                vec![3 * d],
                "3·hidden_size",
            ),
            (
                "attention.dense.weight",
                vec![d, d],
                "hidden_size × hidden_size",
            ),
            ("attention.dense.bias", vec![d], "hidden_size"),
            (
                "mlp.dense_h_to_4h.weight",
                vec![f, d],
                "intermediate_size × hidden_size",
            ),
            ("mlp.dense_h_to_4h.bias", vec![f], "intermediate_size"),
            (
                "mlp.dense_4h_to_h.weight",
                vec![d, f],
                "hidden_size × intermediate_size",
            ),
            ("mlp.dense_4h_to_h.bias", vec![d], "hidden_size"),
        ] {
            out.push((format!("{p}{n}"), s, k));
        }
    }
    out
}

/// A tensor of the headers by transformers' name (`embed_out` may be saved as `lm_head`,
/// decoder tensors with or without the `gpt_neox.` prefix).
fn find<'a>(headers: &'a BTreeMap<String, TensorInfo>, name: &str) -> Option<&'a TensorInfo> {
    headers
        .get(name)
        .or_else(|| {
            name.strip_prefix(DECODER_PREFIX)
                .and_then(|n| headers.get(n))
        })
        .or_else(|| {
            name.strip_prefix("embed_out.")
                .and_then(|rest| headers.get(&format!("lm_head.{rest}")))
        })
}

/// Checks config.json's shape (`config` names the file in errors) against the weights'
/// headers before anything is allocated: the embedding gives vocab_size and hidden_size, the
/// first MLP intermediate_size, the layer tensors num_hidden_layers; then every tensor the
/// model needs must be there with its shape. Errors name the config key that disagrees.
pub fn check_shape_against(
    shape: &HfShape,
    headers: &BTreeMap<String, TensorInfo>,
    config: &Path,
) -> Result<()> {
    let show = |t: &TensorInfo| format!("{:?} in {}", t.shape, t.file.display());
    let embed_name = format!("{DECODER_PREFIX}embed_in.weight");
    let embed = find(headers, &embed_name).ok_or_else(|| {
        anyhow!("the weights have no tensor `{embed_name}` (the input embedding)")
    })?;
    if embed.shape.len() != 2 {
        bail!("tensor `{embed_name}` is {}, not a matrix", show(embed));
    }
    let key =
        |k: &str, got: i64, weights: u64, name: &str, t: &TensorInfo, what: &str| -> Result<()> {
            if got < 0 || got as u64 != weights {
                bail!(
                    "{}: `{k}` is {got}, but the weights' {what} is {weights} (`{name}` is {})",
                    config.display(),
                    show(t)
                );
            }
            Ok(())
        };
    key(
        "vocab_size",
        shape.vocab,
        embed.shape[0],
        &embed_name,
        embed,
        "vocabulary",
    )?;
    key(
        "hidden_size",
        shape.d_model,
        embed.shape[1],
        &embed_name,
        embed,
        "hidden size",
    )?;
    let fc = format!("{DECODER_PREFIX}layers.0.mlp.dense_h_to_4h.weight");
    if let Some(t) = find(headers, &fc) {
        if let Some(&rows) = t.shape.first() {
            key(
                "intermediate_size",
                shape.intermediate,
                rows,
                &fc,
                t,
                "MLP width",
            )?;
        }
    }
    let in_weights = headers
        .keys()
        .filter_map(|k| {
            let rest = k.strip_prefix(DECODER_PREFIX).unwrap_or(k);
            rest.strip_prefix("layers.")?
                .split('.')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .map_or(0, |m| m + 1);
    if shape.layers as u64 != in_weights {
        bail!(
            "{}: `num_hidden_layers` is {}, but the weights hold {in_weights} layers",
            config.display(),
            shape.layers
        );
    }
    for (name, want, keys) in expected(shape) {
        let t = find(headers, &name).ok_or_else(|| {
            anyhow!(
                "the weights have no tensor `{name}`, which a GPT-NeoX model of {} has",
                config.display()
            )
        })?;
        let got: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
        if got != want {
            bail!(
                "tensor `{name}` is {}; config.json's shape needs {want:?} ({keys})",
                show(t)
            );
        }
    }
    Ok(())
}

/// Bytes of memory the process can still take (MemAvailable of /proc/meminfo), when known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuses a model whose weights (fp32, held twice while they are copied into the model)
/// would not fit in the memory this machine has available.
pub fn check_memory(headers: &BTreeMap<String, TensorInfo>, dir: &Path) -> Result<()> {
    let params: u64 = headers
        .values()
        .map(|t| t.shape.iter().product::<u64>())
        .sum();
    let need = params.saturating_mul(8);
    if let Some(have) = available_memory() {
        if need > have {
            bail!(
                "the model of {} has {params} parameters and needs about {:.1} GB to load (fp32, twice while copying), more than this machine's available memory ({:.1} GB)",
                dir.display(),
                need as f64 / 1e9,
                have as f64 / 1e9
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(json: &str, data: usize) -> Vec<u8> {
        let mut v = (json.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(json.as_bytes());
        v.extend(std::iter::repeat_n(0u8, data));
        v
    }

    #[test]
    fn headers_are_checked_against_the_file() {
        let p = Path::new("m.safetensors");
        let ok = header(
            r#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#,
            24,
        );
        let h = parse_safetensors_header(&ok, ok.len() as u64, p).unwrap();
        assert_eq!(h["a"].shape, vec![2, 3]);
        // Cut short: the data ends past the file.
        let short = &ok[..ok.len() - 4];
        let e = parse_safetensors_header(short, short.len() as u64, p).unwrap_err();
        assert!(
            format!("{e}").contains("truncated or damaged") && format!("{e}").contains("cut short"),
            "{e}"
        );
        // Offsets that do not fit the shape.
        let wrong = header(
            r#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#,
            24,
        );
        assert!(format!(
            "{}",
            parse_safetensors_header(&wrong, wrong.len() as u64, p).unwrap_err()
        )
        .contains("needs 24 bytes"));
        // A header length past the file.
        let mut huge = ok.clone();
        huge[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(format!(
            "{}",
            parse_safetensors_header(&huge, huge.len() as u64, p).unwrap_err()
        )
        .contains("claims"));
        // A shape whose element count overflows.
        let over = header(
            r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}"#,
            0,
        );
        assert!(format!(
            "{}",
            parse_safetensors_header(&over, over.len() as u64, p).unwrap_err()
        )
        .contains("overflows"));
    }

    #[test]
    fn config_keys_are_refused_by_name() {
        let base = r#"{"model_type":"gpt_neox","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":256,"vocab_size":128"#;
        let p = Path::new("config.json");
        let cfg = |extra: &str| format!("{base}{extra}}}");
        assert!(parse_config(&cfg(""), p).is_ok());
        let err = |extra: &str| format!("{:#}", parse_config(&cfg(extra), p).unwrap_err());
        assert!(
            err(r#","layer_norm_eps":-1"#).contains("`layer_norm_eps` is -1; it must be above 0")
        );
        assert!(err(r#","layer_norm_eps":0"#).contains("`layer_norm_eps` is 0"));
        assert!(err(r#","max_position_embeddings":0"#).contains("`max_position_embeddings` is 0"));
        let e = err(r#","rotary_pct":0.25,"rope_parameters":{"partial_rotary_factor":0.5}"#);
        assert!(
            e.contains("`rope_parameters.partial_rotary_factor` is 0.5 but `rotary_pct` is 0.25"),
            "{e}"
        );
        assert!(format!("{:#}", parse_config("[1, 2]", p).unwrap_err())
            .contains("is an array, not a JSON object"));
        let e = format!(
            "{:#}",
            parse_config(r#"{"model_type":"gpt_neox","hidden_size":1e999}"#, p).unwrap_err()
        );
        assert!(
            e.contains("not valid JSON") && e.contains("number out of range"),
            "{e}"
        );
    }
}
