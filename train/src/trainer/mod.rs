//! The training loop: this file holds the loop and its step, evaluation and the metrics;
//! `batches.rs` the data it reads, `checkpoint.rs` writing, pruning and resuming checkpoints.
//!
//! Data: each non-SFT sequence picks its source with probability equal to the source's weight
//! (seeded SplitMix64), then reads the next `seq_len + 1` tokens at that source's cursor
//! (sequential, wrapping: the cursor is the data position). SFT reads whole examples in a
//! seeded shuffled order per epoch, masks the prompt's tokens and the padding out of the loss.
//!
//! Optimizer: AdamW as torch.optim's fused kernel runs it (β1, β2, ε, decoupled weight decay
//! on weight matrices only, global-norm clipping; [`crate::optim`]), its state plain tensors a
//! checkpoint can hold. A step whose loss or gradients are not finite is skipped on the device
//! and counted; many in a row stop the run.
//!
//! Arithmetic: bf16 autocast on CUDA by default (matmuls and attention in bf16; LayerNorm, the
//! log-softmax, weights, gradients and AdamW's state in fp32), fp32 on the CPU ([`Precision`]).
//! The loss runs through the chunked cross-entropy head ([`GptNeox::chunked_cross_entropy`]).
//! Nothing is read back from the device within a step: losses and skip counts accumulate
//! there and are read at progress lines, evaluations and checkpoints, which is also where the
//! step clock's windows end ([`crate::throughput`]).
//!
//! Checkpoints: `checkpoints/step-NNNNNN.safetensors` holds the weights (`param.*`), AdamW
//! moments (`adam_m.*`, `adam_v.*`) and, as a byte tensor `state.json`, the step, RNG state,
//! cursors and token tallies. Written to a temporary file and renamed, so a kill at any moment
//! leaves the last complete checkpoint; `resume` continues from it, and on CPU the final
//! weights equal those of an uninterrupted run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::model::{ChunkedLoss, GptNeox, LossReduction, ModelSpec};
use crate::optim::AdamW;
use crate::run_config::{Phase, PhaseKind, RunConfig};
use crate::shim::{self, SdpBackend};
use crate::throughput::{flops_per_token, PhaseThroughput, StepClock};
use mtkit::export::tokens::{read_meta, Split};
use mtkit::util::rng::{mix64, Rng};

mod batches;
mod checkpoint;

use batches::{check_validation, eval_example_batches, load_sources, sft_examples, Source};
pub use batches::{epoch_order, has_scored_token, sft_tensors};
pub use checkpoint::{checkpoint_step, read_checkpoint, SavedCheckpoint};

/// Reports training progress.
pub trait Observer {
    /// After each optimizer step has been queued (its loss is not known yet: reading it would
    /// make the host wait for the device).
    fn step(&self, _global: u64, _total: u64, _phase: &str) {}
    /// Whenever the trainer reads the device: the mean training loss of the steps since the
    /// last read (NaN when all were skipped), the learning rate, and their tokens/s (device
    /// time between two synchronisations).
    fn progress(&self, _global: u64, _phase: &str, _loss: f64, _lr: f64, _tokens_per_s: f64) {}
    /// After each evaluation.
    fn eval(&self, _global: u64, _losses: &[(String, f64)]) {}
    /// Something the user should know (skipped steps), printed to stderr unless overridden.
    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }
}

/// Steps in a row whose loss or gradients are not finite after which a run stops: the
/// weights have stopped moving, and going on would only spend the budget.
pub const MAX_SKIPPED_IN_A_ROW: u64 = 10;

/// The arithmetic of training and evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in fp32.
    Fp32,
    /// bf16 autocast: matmuls and attention in bf16; LayerNorm, softmax, the loss, weights,
    /// gradients and AdamW's state in fp32. bf16 has fp32's exponent range, so no gradient
    /// scaler is needed (fp16's would underflow without one).
    Bf16,
}

impl Precision {
    /// `auto` (bf16 on CUDA, fp32 on the CPU), `bf16` or `fp32`.
    pub fn parse(name: &str, device: Device) -> Result<Precision> {
        Ok(match name {
            "auto" if device.is_cuda() => Precision::Bf16,
            "auto" | "fp32" => Precision::Fp32,
            "bf16" => Precision::Bf16,
            other => bail!("--precision takes auto, bf16 or fp32, not {other:?}"),
        })
    }

    /// Its name, as `--precision` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// Where and how a run computes.
#[derive(Clone, Copy, Debug)]
pub struct Compute {
    /// The device.
    pub device: Device,
    /// The arithmetic.
    pub precision: Precision,
    /// The device's peak dense TFLOP/s in that precision, for MFU (None: MFU not reported).
    pub peak_tflops: Option<f64>,
}

impl From<Device> for Compute {
    /// `device` in its default precision ([`Precision::parse`]'s `auto`), no peak.
    fn from(device: Device) -> Compute {
        Compute {
            device,
            precision: Precision::parse("auto", device).expect("auto is a precision"),
            peak_tflops: None,
        }
    }
}

/// Observes nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// Everything besides tensors that a checkpoint restores.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Optimizer steps done in the whole run.
    pub global_step: u64,
    /// Phase in progress.
    pub phase: usize,
    /// Steps done in that phase.
    pub phase_step: u64,
    /// Position on the current LR schedule.
    pub sched_step: u64,
    /// AdamW's step count (bias correction) since its state was last reset.
    pub adam_t: u64,
    /// Mixture sampler state.
    pub rng: u64,
    /// Token cursor per source (train split).
    pub cursors: BTreeMap<String, u64>,
    /// SFT: examples consumed per source (epoch = this / examples).
    pub sft_pos: BTreeMap<String, u64>,
    /// Tokens requested per source (weight × tokens drawn).
    pub requested: BTreeMap<String, f64>,
    /// Tokens delivered per source.
    pub delivered: BTreeMap<String, u64>,
    /// Training tokens processed.
    pub tokens: u64,
    /// Train-loss sum and count since the last metrics row.
    pub loss_sum: f64,
    /// Steps summed into `loss_sum`.
    pub loss_n: u64,
    /// Training seconds before this process (for tokens/s and wall time across resumes).
    pub seconds: f64,
    /// Steps skipped because the loss or the gradients were not finite.
    #[serde(default)]
    pub skipped_steps: u64,
    /// Of those, how many in a row up to the last step.
    #[serde(default)]
    pub skipped_in_a_row: u64,
}

/// Summary written to `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Run name.
    pub run: String,
    /// Model shape.
    pub preset: String,
    /// Total parameters.
    pub params: i64,
    /// Non-embedding parameters.
    pub non_embedding_params: i64,
    /// Optimizer steps.
    pub steps: u64,
    /// Training tokens.
    pub tokens: u64,
    /// Final mean token cross-entropy (nats) per validation set.
    pub final_losses: BTreeMap<String, f64>,
    /// Tokens requested per source.
    pub tokens_requested: BTreeMap<String, f64>,
    /// Tokens delivered per source.
    pub tokens_delivered: BTreeMap<String, u64>,
    /// Training wall time, seconds (summed over resumes): steps, evaluations, checkpoints.
    pub wall_time_s: f64,
    /// Device.
    pub device: String,
    /// `fp32` or `bf16` ([`Precision`]).
    #[serde(default)]
    pub precision: String,
    /// The attention kernel SDPA chose for the last phase's shape (`flash`, `cudnn`, ...).
    #[serde(default)]
    pub attention: String,
    /// Training tokens / wall_time_s.
    #[serde(default)]
    pub wall_tokens_per_s: f64,
    /// Seconds of optimizer steps in the last process (between device synchronisations,
    /// warm-up included); evaluations and checkpoints are apart.
    #[serde(default)]
    pub step_time_total_s: f64,
    /// Seconds of evaluations in the last process.
    #[serde(default)]
    pub eval_time_s: f64,
    /// Seconds of checkpoint writing in the last process.
    #[serde(default)]
    pub checkpoint_time_s: f64,
    /// Steps skipped for a non-finite loss or gradients.
    #[serde(default)]
    pub skipped_steps: u64,
    /// The peak TFLOP/s MFU is stated against (`--peak-tflops`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_tflops: Option<f64>,
    /// Per phase: median step time after warm-up, tokens/s, model FLOPs, MFU (the last
    /// process's steps; see [`crate::throughput`]).
    #[serde(default)]
    pub throughput: Vec<PhaseThroughput>,
}

/// A run in progress.
pub struct Trainer {
    cfg: RunConfig,
    phases: Vec<Phase>,
    sources: BTreeMap<String, Source>,
    device: Device,
    compute: Compute,
    /// The model.
    pub model: GptNeox,
    vs: nn::VarStore,
    params: Vec<(String, Tensor)>,
    opt: AdamW,
    tally: Tally,
    /// Step, data positions, tallies.
    pub state: TrainState,
    out: PathBuf,
    metrics: Vec<String>,
    /// Per SFT (source, seq_len): the training examples with a scored token, which SFT
    /// epochs go through (all of them unless a prompt fills the window).
    sft_usable: BTreeMap<(String, u64), Vec<u32>>,
    /// SHA-256 of the tokenizer the run's data was tokenized with (kept in checkpoints, so
    /// that an export ships the same tokenizer).
    tokenizer_sha256: Option<String>,
    /// The data's end-of-document id (kept in checkpoints for generation).
    eos_id: Option<u32>,
}

/// What the steps since the last read left on the device, as fp64 scalars there: adding a
/// step costs a few tiny kernels and no host wait.
struct Tally {
    /// Σ of the finite steps' mean losses.
    loss_sum: Tensor,
    /// Finite steps.
    ok: Tensor,
    /// Skipped steps.
    skipped: Tensor,
    /// Skipped steps in a row up to the last step (carried across reads and checkpoints).
    in_a_row: Tensor,
    /// The longest such run since the last read.
    longest: Tensor,
}

/// One read of a [`Tally`].
struct TallyRead {
    loss_sum: f64,
    ok: u64,
    skipped: u64,
    in_a_row: u64,
    longest: u64,
}

impl Tally {
    fn new(device: Device, in_a_row: u64) -> Tally {
        let zero = || Tensor::zeros([], (Kind::Double, device));
        let mut t = Tally {
            loss_sum: zero(),
            ok: zero(),
            skipped: zero(),
            in_a_row: zero(),
            longest: zero(),
        };
        let _ = t.in_a_row.fill_(in_a_row as f64);
        t
    }

    /// Adds a step: its mean loss (fp64) and whether it was skipped (bool).
    fn add(&mut self, loss: &Tensor, skipped: &Tensor) {
        let bad = skipped.to_kind(Kind::Double);
        let good = 1.0 - &bad;
        // where(), not a product: a NaN loss times 0 is still NaN.
        self.loss_sum += loss.where_self(&skipped.logical_not(), &loss.zeros_like());
        self.ok += &good;
        self.skipped += &bad;
        self.in_a_row = (&self.in_a_row + 1.0) * &bad;
        self.longest = self.longest.maximum(&self.in_a_row);
    }

    /// Reads the tallies (one device-to-host copy) and starts the next read's from zero.
    fn read(&mut self) -> TallyRead {
        let all = Tensor::stack(
            &[
                &self.loss_sum,
                &self.ok,
                &self.skipped,
                &self.in_a_row,
                &self.longest,
            ],
            0,
        )
        .to_device(Device::Cpu);
        let v = Vec::<f64>::try_from(&all).expect("five fp64 tallies");
        for t in [
            &mut self.loss_sum,
            &mut self.ok,
            &mut self.skipped,
            &mut self.longest,
        ] {
            let _ = t.zero_();
        }
        TallyRead {
            loss_sum: v[0],
            ok: v[1] as u64,
            skipped: v[2] as u64,
            in_a_row: v[3] as u64,
            longest: v[4] as u64,
        }
    }
}

/// Sets SDPA's backend order for `device`: on Hopper (compute capability 9.x) cuDNN's fused
/// attention first, which is faster than flash there for training shapes; elsewhere
/// LibTorch's default. `MTKIT_SDPA=flash|cudnn|efficient|math` puts one backend first
/// instead. Returns the order, for the log.
pub fn configure_attention(device: Device) -> Result<Vec<SdpBackend>> {
    use SdpBackend::*;
    let first = match std::env::var("MTKIT_SDPA").ok().as_deref() {
        None | Some("") | Some("auto") => None,
        Some(name) => Some(
            [Flash, Cudnn, Efficient, Math]
                .into_iter()
                .find(|b| b.name() == name)
                .ok_or_else(|| {
                    anyhow!(
                        "MTKIT_SDPA is {name:?}; it takes auto, flash, cudnn, efficient or math"
                    )
                })?,
        ),
    };
    let hopper = match device {
        Device::Cuda(i) => shim::cuda_capability(i).is_some_and(|c| (90..100).contains(&c)),
        _ => false,
    };
    if let Some(first) = first.or(hopper.then_some(Cudnn)) {
        let mut order = vec![first];
        order.extend(shim::sdp_priority()?.into_iter().filter(|&b| b != first));
        shim::set_sdp_priority(&order)?;
    }
    shim::sdp_priority()
}

/// The shape of a run that starts from the Hugging Face folder `dir`: its config.json's,
/// which the run's `preset` (when given) must agree with, and which must hold the data's ids.
fn init_spec(dir: &Path, preset: &str, data_vocab: usize) -> Result<ModelSpec> {
    let spec = crate::hf::read_model(dir)
        .with_context(|| format!("init folder {}", dir.display()))?
        .spec;
    if !preset.is_empty() {
        let want = ModelSpec::preset(preset, data_vocab)?;
        for (key, hf, ours) in [
            ("num_hidden_layers", spec.layers, want.layers),
            ("hidden_size", spec.d_model, want.d_model),
            ("num_attention_heads", spec.heads, want.heads),
        ] {
            if hf != ours {
                bail!(
                    "init folder {}: config.json's {key} is {hf}, but preset `{preset}` has {ours}; leave `preset` out to take the folder's shape",
                    dir.display()
                );
            }
        }
    }
    if data_vocab as i64 > spec.vocab {
        bail!(
            "init folder {}: the model's vocabulary has {} ids, fewer than the tokenizer of the run's data ({data_vocab})",
            dir.display(),
            spec.vocab
        );
    }
    Ok(spec)
}

/// Loads the weights of the Hugging Face folder `dir` into `params`, and AdamW's moments into
/// `adam` when mtkit exported the folder; returns AdamW's step count (0 when fresh).
fn init_weights(
    dir: &Path,
    params: &mut [(String, Tensor)],
    adam: &mut [(Tensor, Tensor)],
) -> Result<u64> {
    crate::hf::load_into(params, crate::hf::read_weights(dir)?, dir)?;
    let Some(opt) = crate::hf::read_optimizer(dir)? else {
        eprintln!(
            "note: weights from {}; optimizer state starts fresh (the folder has no {})",
            dir.display(),
            crate::hf::OPTIMIZER_FILE
        );
        return Ok(0);
    };
    tch::no_grad(|| -> Result<()> {
        for ((n, p), (m, v)) in params.iter().zip(adam.iter_mut()) {
            let (sm, sv) = opt
                .moments
                .get(n)
                .ok_or_else(|| anyhow!("{}: no optimizer moments for `{n}`", dir.display()))?;
            if sm.size() != p.size() || sv.size() != p.size() {
                bail!(
                    "{}: the optimizer moments of `{n}` do not have the parameter's shape",
                    dir.display()
                );
            }
            m.copy_(sm);
            v.copy_(sv);
        }
        Ok(())
    })?;
    eprintln!(
        "note: weights and optimizer state (AdamW step {}) from {}",
        opt.adam_t,
        dir.display()
    );
    Ok(opt.adam_t)
}

/// Chooses the device: `cpu`, `cuda`, or `auto` (CUDA when available).
pub fn device(name: &str) -> Result<Device> {
    Ok(match name {
        "cpu" => Device::Cpu,
        "cuda" => {
            if !tch::Cuda::is_available() {
                bail!("--device cuda: no CUDA device is available to libtorch");
            }
            Device::Cuda(0)
        }
        "auto" => Device::cuda_if_available(),
        other => bail!("--device takes cpu, cuda or auto, not {other:?}"),
    })
}

impl Trainer {
    /// Sets up a run in `out` (or resumes the latest checkpoint there when `resume`).
    pub fn new(
        cfg: RunConfig,
        data: &Path,
        out: &Path,
        compute: impl Into<Compute>,
        resume: bool,
    ) -> Result<Trainer> {
        let compute = compute.into();
        let device = compute.device;
        let (sources, tokenizer_sha256) = load_sources(&cfg, data)?;
        let phases = cfg.resolve(&|s, seq_len| {
            let src = sources
                .get(s)
                .ok_or_else(|| anyhow!("unknown source `{s}`"))?;
            Ok(sft_examples(s, src, seq_len)?.len() as u64)
        })?;
        let mut sft_usable = BTreeMap::new();
        for (i, p) in phases.iter().enumerate() {
            if p.kind != PhaseKind::Sft {
                continue;
            }
            let name = &p.mixture[0].0;
            let src = &sources[name];
            if !src.has_prompt {
                eprintln!("note: sft source `{name}` has no prompt/response split in its card; the loss covers every token");
            }
            let usable = sft_examples(name, src, p.seq_len)
                .map_err(|e| anyhow!("phase {} (`{}`): {e:#}", i + 1, p.name))?;
            let skipped = src.train.n_docs() - usable.len();
            if skipped > 0 {
                eprintln!(
                    "note: phase `{}`: {skipped} of {} examples of `{name}` have no response token within seq_len {} (their prompt fills the window); they are skipped",
                    p.name,
                    src.train.n_docs(),
                    p.seq_len
                );
            }
            sft_usable.insert((name.clone(), p.seq_len), usable);
        }
        check_validation(&cfg, &phases, &sources)?;
        let vocab = sources
            .values()
            .next()
            .map(|s| s.train.vocab_size)
            .unwrap_or(0) as usize;
        let spec = match &cfg.run.init {
            Some(dir) => init_spec(dir, &cfg.run.preset, vocab)?,
            None if cfg.run.preset.is_empty() => bail!(
                "[run] needs `preset` (a model shape) or `init` (a Hugging Face folder to start from)"
            ),
            None => ModelSpec::preset(&cfg.run.preset, vocab)?,
        };
        let eos_id = sources.values().next().map(|s| s.train.eos_id);
        tch::manual_seed(cfg.run.seed as i64);
        let vs = nn::VarStore::new(device);
        let model = GptNeox::new(&vs, spec);
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let mut opt = AdamW::new(&params, device);
        let mut adam_t = 0;
        if let Some(dir) = &cfg.run.init {
            adam_t = init_weights(dir, &mut params, &mut opt.moments)?;
            opt.set_step_count(adam_t);
        }
        if device.is_cuda() {
            configure_attention(device)?;
        }
        let mut t = Trainer {
            state: TrainState {
                rng: mix64(cfg.run.seed ^ 0x6d69_7874),
                adam_t,
                ..Default::default()
            },
            compute,
            tally: Tally::new(device, 0),
            tokenizer_sha256,
            eos_id,
            cfg,
            phases,
            sources,
            device,
            model,
            vs,
            params,
            opt,
            out: out.to_path_buf(),
            metrics: Vec::new(),
            sft_usable,
        };
        std::fs::create_dir_all(out.join("checkpoints"))
            .with_context(|| format!("cannot create {}", out.display()))?;
        if resume {
            t.resume_latest()?;
        } else if !t.checkpoints()?.is_empty() {
            bail!("{} already holds checkpoints: pass --resume to continue that run, or choose another --out", out.display());
        }
        Ok(t)
    }

    /// Total optimizer steps of the run.
    pub fn total_steps(&self) -> u64 {
        self.phases.iter().map(|p| p.steps).sum()
    }

    /// The resolved phases.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// Model parameters by name (sorted).
    pub fn named_parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// Token cross-entropy of the model's predictions for inputs `x` against targets `y`
    /// (targets of -100 ignored), through the chunked head, in the run's precision: the one
    /// loss of training (with `grad`) and evaluation (without).
    fn loss(&self, x: &Tensor, y: &Tensor, grad: Option<(LossReduction, f64)>) -> ChunkedLoss {
        match self.compute.precision {
            Precision::Fp32 => self.model.chunked_cross_entropy(x, y, None, grad),
            Precision::Bf16 => shim::autocast(self.device, Kind::BFloat16, || {
                self.model
                    .chunked_cross_entropy(x, y, Some(Kind::BFloat16), grad)
            }),
        }
    }

    /// One optimizer step of `phase`, queued on the device: the micro-batches' forward and
    /// backward, then AdamW (skipped there when a loss or the gradients are not finite). Its
    /// mean micro-batch loss goes into the device tally.
    fn step(&mut self, pi: usize) -> Result<()> {
        let phase = self.phases[pi].clone();
        let accum = phase.grad_accum as f64;
        let mut loss_sum = Tensor::zeros([], (Kind::Double, self.device));
        let mut bad = Tensor::zeros([], (Kind::Bool, self.device));
        for _ in 0..phase.grad_accum {
            let (x, y) = if phase.kind == PhaseKind::Sft {
                self.sft_batch(&phase)
            } else {
                self.lm_batch(&phase)
            };
            let out = self.loss(&x, &y, Some((LossReduction::Mean, 1.0 / accum)));
            let mean = (&out.sum / out.count.to_kind(out.sum.kind())).to_kind(Kind::Double);
            bad = bad.logical_or(&mean.isfinite().logical_not());
            loss_sum += &mean;
            out.surrogate
                .expect("a training loss has a surrogate")
                .backward();
            self.state.tokens += phase.batch_size * phase.seq_len;
        }
        let lr = phase.schedule.lr_at(self.state.sched_step, phase.steps);
        let outcome = self.opt.step(&self.params, &phase.optimizer, lr, &bad)?;
        self.tally.add(&(loss_sum / accum), &outcome.skipped);
        self.state.sched_step += 1;
        Ok(())
    }

    /// Mean token cross-entropy (nats) of one validation set.
    pub fn evaluate(&self, name: &str, seq_len: u64, batch_size: u64) -> Result<f64> {
        let src = self
            .sources
            .get(name)
            .ok_or_else(|| anyhow!("unknown validation set `{name}`"))?;
        let val = &src.val;
        if val.n_tokens < 2 {
            bail!("validation split of `{name}` is empty; tokenize with --val-docs > 0");
        }
        let (t, b) = (seq_len as usize, batch_size as usize);
        // Summed on the device and read once at the end.
        let mut total = Tensor::zeros([], (Kind::Double, self.device));
        let mut count = Tensor::zeros([], (Kind::Int64, self.device));
        tch::no_grad(|| -> Result<()> {
            let mut add = |x: Tensor, y: Tensor| {
                let (x, y) = (self.upload(x), self.upload(y));
                let out = self.loss(&x, &y, None);
                total += out.sum.to_kind(Kind::Double);
                count += out.count;
            };
            if src.has_prompt {
                // Whole examples, response tokens only, as SFT trains them.
                for docs in eval_example_batches(val, self.cfg.run.eval_tokens, b) {
                    let (x, y, _) = sft_tensors(val, &docs, t);
                    add(x, y);
                }
            } else {
                let windows = ((self.cfg.run.eval_tokens as usize / t).max(1))
                    .min(((val.n_tokens as usize - 1) / t).max(1));
                let mut w = 0;
                while w < windows {
                    let n = b.min(windows - w);
                    let mut xs = Vec::with_capacity(n * t);
                    let mut ys = Vec::with_capacity(n * t);
                    for k in 0..n {
                        let win = val.window(((w + k) * t) as u64, t + 1);
                        xs.extend_from_slice(&win[..t]);
                        ys.extend_from_slice(&win[1..]);
                    }
                    add(
                        Tensor::from_slice(&xs).view([n as i64, t as i64]),
                        Tensor::from_slice(&ys).view([n as i64, t as i64]),
                    );
                    w += n;
                }
            }
            Ok(())
        })?;
        let count = count.int64_value(&[]);
        if count == 0 {
            bail!("validation set `{name}` has no scored tokens");
        }
        Ok(total.double_value(&[]) / count as f64)
    }

    /// Runs to the end (or until `stop_after` total steps), writing metrics, checkpoints and
    /// the summary into the run folder.
    pub fn run(&mut self, obs: &dyn Observer, stop_after: Option<u64>) -> Result<Option<Summary>> {
        let start = Instant::now();
        let seconds_before = self.state.seconds;
        let total = self.total_steps();
        let mut clock = StepClock::new(self.device, self.phases.len());
        while self.state.phase < self.phases.len() {
            let pi = self.state.phase;
            let phase = self.phases[pi].clone();
            if self.state.phase_step == 0 && !phase.continues && self.state.sched_step != 0 {
                // A new schedule starts with fresh optimizer state.
                self.state.sched_step = 0;
                self.state.adam_t = 0;
                self.opt.reset();
            }
            clock.open(pi);
            while self.state.phase_step < phase.steps {
                if stop_after.is_some_and(|s| self.state.global_step >= s) {
                    clock.close();
                    self.state.seconds = seconds_before + start.elapsed().as_secs_f64();
                    self.save_checkpoint()?;
                    return Ok(None);
                }
                let lr = phase.schedule.lr_at(self.state.sched_step, phase.steps);
                self.step(pi)?;
                clock.stepped();
                self.state.phase_step += 1;
                self.state.global_step += 1;
                let g = self.state.global_step;
                obs.step(g, total, &phase.name);
                let end_of_phase = self.state.phase_step == phase.steps;
                let eval_due = end_of_phase || g % self.cfg.run.eval_every == 0;
                let checkpoint_due = end_of_phase || g % self.cfg.run.checkpoint_every == 0;
                let stopping = stop_after.is_some_and(|s| g >= s);
                // The device is read (and so waited for) only here.
                if eval_due || checkpoint_due || stopping || clock.due() {
                    let per_step = clock.close();
                    self.read_tally(&phase, lr, per_step, obs)?;
                }
                if eval_due {
                    self.state.seconds = seconds_before + start.elapsed().as_secs_f64();
                    let step_tps = clock
                        .median_step(pi)
                        .map(|(secs, _)| phase.tokens_per_step() as f64 / secs);
                    let (losses, secs) = clock.apart(|| self.eval_row(&phase, lr, step_tps));
                    clock.eval_s += secs;
                    obs.eval(g, &losses?);
                }
                if end_of_phase {
                    self.state.phase += 1;
                    self.state.phase_step = 0;
                }
                if checkpoint_due {
                    self.state.seconds = seconds_before + start.elapsed().as_secs_f64();
                    let (saved, secs) = clock.apart(|| self.save_checkpoint());
                    saved?;
                    clock.checkpoint_s += secs;
                }
                if end_of_phase {
                    break;
                }
                clock.open(pi);
            }
        }
        let last = self.phases.last().unwrap().clone();
        let (final_losses, secs) = clock.apart(|| -> Result<BTreeMap<String, f64>> {
            let mut losses = BTreeMap::new();
            for v in &self.cfg.run.validation {
                losses.insert(v.clone(), self.evaluate(v, last.seq_len, last.batch_size)?);
            }
            Ok(losses)
        });
        clock.eval_s += secs;
        let final_losses = final_losses?;
        self.state.seconds = seconds_before + start.elapsed().as_secs_f64();
        let summary = self.summary(final_losses, &clock);
        mtkit::util::paths::write_atomic_bytes(
            &self.out.join("summary.json"),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        Ok(Some(summary))
    }

    /// Reads the device's tallies of the steps since the last read into the state, warns of
    /// skipped steps, stops a run whose steps keep being skipped, and reports progress.
    fn read_tally(
        &mut self,
        phase: &Phase,
        lr: f64,
        per_step_s: Option<f64>,
        obs: &dyn Observer,
    ) -> Result<()> {
        let r = self.tally.read();
        self.state.loss_sum += r.loss_sum;
        self.state.loss_n += r.ok;
        self.state.skipped_steps += r.skipped;
        self.state.skipped_in_a_row = r.in_a_row;
        if r.longest >= MAX_SKIPPED_IN_A_ROW.min(phase.steps) {
            bail!(
                "the loss or the gradients were not finite for {} steps in a row (up to step {} of phase `{}`); lower the learning rate",
                r.longest,
                self.state.phase_step,
                phase.name
            );
        }
        if r.skipped > 0 {
            obs.warn(&format!(
                "{} of the last {} steps (up to step {} of phase `{}`) were skipped: the loss or the gradients were not finite, so AdamW left the weights as they were ({} skipped in all)",
                r.skipped,
                r.ok + r.skipped,
                self.state.phase_step,
                phase.name,
                self.state.skipped_steps
            ));
        }
        let loss = if r.ok > 0 {
            r.loss_sum / r.ok as f64
        } else {
            f64::NAN
        };
        let tps = per_step_s.map_or(f64::NAN, |s| phase.tokens_per_step() as f64 / s);
        obs.progress(self.state.global_step, &phase.name, loss, lr, tps);
        Ok(())
    }

    /// The run's summary once every phase is done.
    fn summary(&self, final_losses: BTreeMap<String, f64>, clock: &StepClock) -> Summary {
        let (params, non_emb) = self.model.spec.param_counts();
        let peak = self.compute.peak_tflops;
        let throughput = self
            .phases
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let flops = flops_per_token(&self.model.spec, p.seq_len);
                clock.throughput(i, &p.name, p.tokens_per_step(), flops, peak)
            })
            .collect();
        Summary {
            run: self.cfg.run.name.clone(),
            preset: self.model.spec.preset.clone(),
            params,
            non_embedding_params: non_emb,
            steps: self.state.global_step,
            tokens: self.state.tokens,
            final_losses,
            // Requested tokens are sums of weight × length: round away float noise.
            tokens_requested: self
                .state
                .requested
                .iter()
                .map(|(k, v)| (k.clone(), (v * 1e6).round() / 1e6))
                .collect(),
            tokens_delivered: self.state.delivered.clone(),
            wall_time_s: self.state.seconds,
            device: format!("{:?}", self.device),
            precision: self.compute.precision.name().into(),
            attention: self.attention_kernel(self.phases.last().map_or(1, |p| p.seq_len)),
            wall_tokens_per_s: self.state.tokens as f64 / self.state.seconds.max(1e-9),
            step_time_total_s: clock.step_seconds(),
            eval_time_s: clock.eval_s,
            checkpoint_time_s: clock.checkpoint_s,
            skipped_steps: self.state.skipped_steps,
            peak_tflops: peak,
            throughput,
        }
    }

    /// The SDPA backend LibTorch picks for this model's attention at `seq_len` in the run's
    /// precision (`_fused_sdp_choice`, asked with small tensors of that shape).
    pub fn attention_kernel(&self, seq_len: u64) -> String {
        let kind = match self.compute.precision {
            Precision::Bf16 => Kind::BFloat16,
            Precision::Fp32 => Kind::Float,
        };
        let (h, hd) = (self.model.spec.heads, self.model.spec.head_dim());
        let q = Tensor::zeros([1, h, seq_len as i64, hd], (kind, self.device));
        let choice =
            Tensor::internal_fused_sdp_choice::<Tensor>(&q, &q, &q, None, 0.0, true, None, false);
        SdpBackend::from_code(choice)
            .map_or_else(|| format!("backend {choice}"), |b| b.name().into())
    }

    fn eval_row(
        &mut self,
        phase: &Phase,
        lr: f64,
        step_tokens_per_s: Option<f64>,
    ) -> Result<Vec<(String, f64)>> {
        let mut losses = Vec::new();
        for v in self.cfg.run.validation.clone() {
            losses.push((
                v.clone(),
                self.evaluate(&v, phase.seq_len, phase.batch_size)?,
            ));
        }
        let train = if self.state.loss_n > 0 {
            self.state.loss_sum / self.state.loss_n as f64
        } else {
            f64::NAN
        };
        self.state.loss_sum = 0.0;
        self.state.loss_n = 0;
        let tps = self.state.tokens as f64 / self.state.seconds.max(1e-9);
        let mut row = format!(
            "{},{},{},{:.6e},{:.6}",
            self.state.global_step, phase.name, self.state.tokens, lr, train
        );
        for (_, l) in &losses {
            row.push_str(&format!(",{l:.6}"));
        }
        row.push_str(&format!(",{tps:.1}"));
        match step_tokens_per_s {
            Some(t) => row.push_str(&format!(",{t:.1}")),
            None => row.push(','),
        }
        self.metrics.push(row);
        self.write_metrics()?;
        Ok(losses)
    }

    fn write_metrics(&self) -> Result<()> {
        let mut s = String::from("step,phase,tokens,lr,train_loss");
        for v in &self.cfg.run.validation {
            s.push_str(&format!(",val_{v}"));
        }
        s.push_str(",tokens_per_s,step_tokens_per_s\n");
        for r in &self.metrics {
            s.push_str(r);
            s.push('\n');
        }
        mtkit::util::paths::write_atomic_bytes(&self.out.join("metrics.csv"), s.as_bytes())
    }

    /// The run's VarStore (weights).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
}
