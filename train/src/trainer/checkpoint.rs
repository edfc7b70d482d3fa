//! Checkpoints: written to a temporary file and renamed (`checkpoints/step-NNNNNN.safetensors`:
//! weights, AdamW moments, the run state as JSON), pruned to the newest, found and resumed
//! from, and reused as another run's start when the completed phases are the same.

use super::*;

/// What a checkpoint file holds, read back whole.
pub struct SavedCheckpoint {
    /// Step, data positions, tallies.
    pub state: TrainState,
    metrics: Vec<String>,
    /// The run's config.
    pub config: RunConfig,
    /// The model's shape (absent in checkpoints written before mtkit recorded it).
    pub spec: Option<ModelSpec>,
    /// SHA-256 of the tokenizer of the run's data (likewise).
    pub tokenizer_sha256: Option<String>,
    /// The data's end-of-document id (likewise).
    pub eos_id: Option<u32>,
    /// `param.*`, `adam_m.*`, `adam_v.*` and `state.json`.
    pub tensors: BTreeMap<String, Tensor>,
}

/// Reads a checkpoint; any error means the file is damaged (or not a checkpoint).
pub fn read_checkpoint(path: &Path) -> Result<SavedCheckpoint> {
    let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| anyhow!("cannot read checkpoint {}: {e}", path.display()))?
        .into_iter()
        .collect();
    let json = tensors
        .get("state.json")
        .ok_or_else(|| anyhow!("{}: no state.json", path.display()))?;
    let bytes: Vec<u8> = Vec::<u8>::try_from(json).map_err(|e| anyhow!("{e}"))?;
    #[derive(Deserialize)]
    struct Saved {
        state: TrainState,
        metrics: Vec<String>,
        config: RunConfig,
        #[serde(default)]
        spec: Option<ModelSpec>,
        #[serde(default)]
        tokenizer_sha256: Option<String>,
        #[serde(default)]
        eos_id: Option<u32>,
    }
    let saved: Saved =
        serde_json::from_slice(&bytes).with_context(|| format!("{}: bad state", path.display()))?;
    Ok(SavedCheckpoint {
        state: saved.state,
        metrics: saved.metrics,
        config: saved.config,
        spec: saved.spec,
        tokenizer_sha256: saved.tokenizer_sha256,
        eos_id: saved.eos_id,
        tensors,
    })
}

/// The step of a checkpoint file `step-NNNNNNNN.safetensors`.
pub fn checkpoint_step(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("step-")?
        .strip_suffix(".safetensors")?
        .parse()
        .ok()
}

impl Trainer {
    /// The run's checkpoints, oldest first.
    pub(super) fn checkpoints(&self) -> Result<Vec<PathBuf>> {
        let dir = self.out.join("checkpoints");
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut cks: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| checkpoint_step(p).is_some())
            .collect();
        cks.sort();
        Ok(cks)
    }

    /// Resumes from the newest checkpoint that reads back whole; a damaged newer one (a
    /// truncated file, say) is named and passed over for the one before it.
    pub(super) fn resume_latest(&mut self) -> Result<()> {
        let cks = self.checkpoints()?;
        if cks.is_empty() {
            bail!(
                "--resume: no checkpoint in {}",
                self.out.join("checkpoints").display()
            );
        }
        let mut damaged = Vec::new();
        for ck in cks.iter().rev() {
            match read_checkpoint(ck) {
                Ok(saved) => {
                    for (bad, why) in &damaged {
                        eprintln!(
                            "warning: checkpoint {} cannot be read ({why:#}); resuming from {} instead",
                            Path::new(bad).display(),
                            ck.display()
                        );
                    }
                    return self.apply_checkpoint(ck, saved);
                }
                Err(e) => damaged.push((ck.display().to_string(), e)),
            }
        }
        let (newest, why) = &damaged[0];
        bail!(
            "--resume: no checkpoint in {} can be read; the newest, {newest}: {why:#}",
            self.out.join("checkpoints").display()
        )
    }

    /// Deletes the checkpoints that the retention setting does not keep: the last
    /// `keep_checkpoints` and every phase end stay.
    pub(super) fn prune_checkpoints(&self) -> Result<()> {
        let keep = self.cfg.run.keep_checkpoints as usize;
        if keep == 0 {
            return Ok(());
        }
        let phase_ends: Vec<u64> = self
            .phases
            .iter()
            .scan(0u64, |acc, p| {
                *acc += p.steps;
                Some(*acc)
            })
            .collect();
        let cks = self.checkpoints()?;
        let n = cks.len();
        for (i, ck) in cks.iter().enumerate() {
            let step = checkpoint_step(ck).unwrap_or(0);
            if i + keep < n && !phase_ends.contains(&step) {
                std::fs::remove_file(ck)
                    .with_context(|| format!("cannot remove old checkpoint {}", ck.display()))?;
            }
        }
        Ok(())
    }

    pub(super) fn save_checkpoint(&mut self) -> Result<()> {
        self.state.adam_t = self.opt.step_count();
        let dir = self.out.join("checkpoints");
        let path = dir.join(format!("step-{:08}.safetensors", self.state.global_step));
        #[derive(Serialize)]
        struct Saved<'a> {
            state: &'a TrainState,
            metrics: &'a [String],
            config: &'a RunConfig,
            spec: &'a ModelSpec,
            tokenizer_sha256: &'a Option<String>,
            eos_id: Option<u32>,
        }
        let json = serde_json::to_vec(&Saved {
            state: &self.state,
            metrics: &self.metrics,
            config: &self.cfg,
            spec: &self.model.spec,
            tokenizer_sha256: &self.tokenizer_sha256,
            eos_id: self.eos_id,
        })?;
        let json_t = Tensor::from_slice(&json);
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for ((n, p), (m, v)) in self.params.iter().zip(&self.opt.moments) {
            named.push((format!("param.{n}"), p.to_device(Device::Cpu)));
            named.push((format!("adam_m.{n}"), m.to_device(Device::Cpu)));
            named.push((format!("adam_v.{n}"), v.to_device(Device::Cpu)));
        }
        named.push(("state.json".into(), json_t));
        let tmp = mtkit::util::paths::temp_file_for(&path)?;
        Tensor::write_safetensors(&named, tmp.path())
            .map_err(|e| anyhow!("cannot write checkpoint: {e}"))?;
        mtkit::util::paths::make_readable(tmp.path());
        tmp.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write {}", path.display()))?;
        self.prune_checkpoints()
    }

    pub(super) fn load_checkpoint(&mut self, path: &Path) -> Result<()> {
        let saved = read_checkpoint(path)?;
        self.apply_checkpoint(path, saved)
    }

    pub(super) fn apply_checkpoint(&mut self, path: &Path, saved: SavedCheckpoint) -> Result<()> {
        // How many checkpoints to keep is not part of what the run computes.
        let mut config = saved.config.clone();
        config.run.keep_checkpoints = self.cfg.run.keep_checkpoints;
        if config != self.cfg && !self.shares_prefix(&config, &saved.state) {
            bail!(
                "{} was written by a different run config; resume with the same config",
                path.display()
            );
        }
        let tensors = &saved.tensors;
        tch::no_grad(|| -> Result<()> {
            for ((n, p), (m, v)) in self.params.iter_mut().zip(self.opt.moments.iter_mut()) {
                let get = |k: String| {
                    tensors
                        .get(&k)
                        .ok_or_else(|| anyhow!("{}: missing tensor {k}", path.display()))
                };
                p.copy_(get(format!("param.{n}"))?);
                m.copy_(get(format!("adam_m.{n}"))?);
                v.copy_(get(format!("adam_v.{n}"))?);
            }
            Ok(())
        })?;
        self.opt.set_step_count(saved.state.adam_t);
        self.tally = Tally::new(self.device, saved.state.skipped_in_a_row);
        self.state = saved.state;
        self.metrics = saved.metrics;
        Ok(())
    }

    /// Whether a checkpoint of `other` taken at a phase boundary is a valid start for this
    /// run: same run settings (the name aside) and identical completed phases.
    pub(super) fn shares_prefix(&self, other: &RunConfig, state: &TrainState) -> bool {
        let mut a = other.run.clone();
        a.name = self.cfg.run.name.clone();
        let done = state.phase;
        state.phase_step == 0
            && a == self.cfg.run
            && done <= other.phases.len()
            && done <= self.cfg.phases.len()
            && other.phases[..done] == self.cfg.phases[..done]
    }

    /// Starts this run from a phase-boundary checkpoint of a run with the same first phases
    /// (prefix reuse in verification grids).
    pub fn start_from(&mut self, checkpoint: &Path) -> Result<()> {
        self.load_checkpoint(checkpoint)?;
        self.metrics.clear();
        Ok(())
    }

    /// Path of the checkpoint written at `step`, if any.
    pub fn checkpoint_at(&self, step: u64) -> Option<PathBuf> {
        let p = self
            .out
            .join("checkpoints")
            .join(format!("step-{step:08}.safetensors"));
        p.exists().then_some(p)
    }
}
