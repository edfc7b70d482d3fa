//! Where a trained model is read from, for `mtkit model export` and `mtkit model generate`:
//! an mtkit checkpoint file, a run folder (its newest checkpoint), or a Hugging Face GPT-NeoX
//! folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tch::{nn, Device, Tensor};

use crate::hf::{self, ExportSource, OptimizerState};
use crate::model::{GptNeox, ModelSpec};
use crate::trainer::{checkpoint_step, read_checkpoint};

/// The newest `checkpoints/step-*.safetensors` of a run folder.
pub fn newest_checkpoint(run: &Path) -> Result<PathBuf> {
    let dir = run.join("checkpoints");
    let mut newest: Option<(u64, PathBuf)> = None;
    let entries = std::fs::read_dir(&dir)
        .with_context(|| format!("{} has no checkpoints/ folder", run.display()))?;
    for e in entries {
        let p = e?.path();
        if let Some(step) = checkpoint_step(&p) {
            if newest.as_ref().is_none_or(|(s, _)| step > *s) {
                newest = Some((step, p));
            }
        }
    }
    newest
        .map(|(_, p)| p)
        .ok_or_else(|| anyhow!("{} holds no checkpoint", dir.display()))
}

/// Reads a model from a checkpoint file, a run folder or a Hugging Face folder, with what an
/// export needs besides the weights.
pub fn open(path: &Path) -> Result<ExportSource> {
    if hf::is_hf_folder(path) {
        let m = hf::read_model(path)?;
        return Ok(ExportSource {
            params: hf::read_weights(path)?,
            optimizer: hf::read_optimizer(path)?,
            spec: m.spec,
            eos_id: m.eos_token_id,
            tokenizer_sha256: None,
            max_seq_len: 0,
            max_positions: m.max_positions,
        });
    }
    let file = if path.is_dir() {
        newest_checkpoint(path)?
    } else if path.is_file() {
        path.to_path_buf()
    } else {
        bail!(
            "{} is neither a checkpoint file, a run folder nor a Hugging Face folder (config.json)",
            path.display()
        );
    };
    let saved = read_checkpoint(&file)?;
    let mut params = BTreeMap::new();
    let mut moments = BTreeMap::new();
    for (name, t) in &saved.tensors {
        if let Some(n) = name.strip_prefix("param.") {
            params.insert(n.to_string(), t.shallow_clone());
            let m = saved.tensors.get(&format!("adam_m.{n}"));
            let v = saved.tensors.get(&format!("adam_v.{n}"));
            if let (Some(m), Some(v)) = (m, v) {
                moments.insert(n.to_string(), (m.shallow_clone(), v.shallow_clone()));
            }
        }
    }
    let spec = match saved.spec {
        Some(s) => s,
        // Checkpoints from before the shape was recorded: the preset, with the vocabulary
        // the input embedding has.
        None => {
            let vocab = params
                .get("embed_in.weight")
                .map(|t| t.size()[0])
                .ok_or_else(|| anyhow!("{}: no embed_in.weight", file.display()))?;
            let mut s = ModelSpec::preset(&saved.config.run.preset, 0)?;
            s.vocab = vocab;
            s
        }
    };
    let max_seq_len = saved
        .config
        .phases
        .iter()
        .filter_map(|p| p.seq_len)
        .max()
        .unwrap_or(0);
    Ok(ExportSource {
        spec,
        params,
        optimizer: Some(OptimizerState {
            moments,
            adam_t: saved.state.adam_t,
        }),
        tokenizer_sha256: saved.tokenizer_sha256,
        eos_id: saved.eos_id.map(i64::from),
        max_seq_len,
        max_positions: None,
    })
}

/// A model built from `src`'s weights on `device`, for inference.
pub fn build(src: &ExportSource, device: Device) -> Result<(nn::VarStore, GptNeox)> {
    let vs = nn::VarStore::new(device);
    let model = GptNeox::new(&vs, src.spec.clone());
    let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let weights = src
        .params
        .iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    hf::load_into(&mut params, weights, Path::new("the model"))?;
    Ok((vs, model))
}
