//! Throughput measured the way it can be trusted: step time as the median over steps after
//! warm-up, each timed within a window that starts and ends with a device synchronisation and
//! holds nothing but steps (evaluation and checkpoints are timed apart); model FLOPs per token
//! by PaLM's count, and MFU against a peak the user states.
//!
//! A window ends wherever the trainer reads the device anyway (the progress line, evaluation,
//! checkpoints), and at least every [`WINDOW_SECONDS`] of host time, so timing adds no
//! synchronisation of its own beyond those.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::model::ModelSpec;

/// Steps at the start of each phase (in each process) left out of the step time: CUDA
/// context, cuBLAS and attention kernel selection, the caching allocator's first blocks.
pub const WARMUP_STEPS: u64 = 5;

/// A window of steps is closed after at most this much host time.
pub const WINDOW_SECONDS: f64 = 0.25;

/// Model FLOPs per trained token, forward and backward, PaLM's count (Chowdhery et al. 2022,
/// appendix B): 6·N + 12·L·d·T, with N the parameters without the input embedding (a table
/// lookup, no FLOPs) but with the output layer (a matmul), and 12·L·d·T the attention scores
/// and weighted values at sequence length T (causal masking not discounted, as PaLM counts).
pub fn flops_per_token(spec: &ModelSpec, seq_len: u64) -> f64 {
    let (total, _) = spec.param_counts();
    let n = (total - spec.vocab * spec.d_model) as f64;
    6.0 * n + 12.0 * (spec.layers * spec.d_model) as f64 * seq_len as f64
}

/// Measured throughput of one phase (this process's steps).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PhaseThroughput {
    /// Phase name.
    pub phase: String,
    /// Tokens per optimizer step (batch × seq_len × grad_accum; SFT padding included).
    pub tokens_per_step: u64,
    /// Steps whose time the median is over (after warm-up).
    pub steps_timed: u64,
    /// Median seconds per step after warm-up (None: no step past warm-up in this process).
    pub step_time_s: Option<f64>,
    /// tokens_per_step / step_time_s.
    pub tokens_per_s: Option<f64>,
    /// Model FLOPs per token at this phase's seq_len ([`flops_per_token`]).
    pub flops_per_token: f64,
    /// Model TFLOP/s achieved: tokens_per_s × flops_per_token / 1e12.
    pub model_tflops: Option<f64>,
    /// model_tflops / peak_tflops, when a peak was given.
    pub mfu: Option<f64>,
}

struct Window {
    phase: usize,
    start: Instant,
    steps: u64,
    /// Whether any of its steps was a warm-up step.
    warm: bool,
}

/// Times steps in windows between device synchronisations.
pub struct StepClock {
    device: Device,
    open: Option<Window>,
    /// Closed windows: (phase, steps, seconds, warm).
    windows: Vec<(usize, u64, f64, bool)>,
    /// Steps counted per phase in this process.
    steps_in_phase: Vec<u64>,
    /// Seconds spent evaluating.
    pub eval_s: f64,
    /// Seconds spent writing checkpoints.
    pub checkpoint_s: f64,
}

impl StepClock {
    /// A clock for `phases` phases on `device`.
    pub fn new(device: Device, phases: usize) -> StepClock {
        StepClock {
            device,
            open: None,
            windows: Vec::new(),
            steps_in_phase: vec![0; phases],
            eval_s: 0.0,
            checkpoint_s: 0.0,
        }
    }

    /// Waits for the device's queued work.
    pub fn sync(&self) {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
    }

    /// Opens a window for `phase` unless one is open (the device is in sync here: at the start,
    /// or after a close, evaluation or checkpoint).
    pub fn open(&mut self, phase: usize) {
        if self.open.is_none() {
            self.open = Some(Window {
                phase,
                start: Instant::now(),
                steps: 0,
                warm: false,
            });
        }
    }

    /// Counts a step (its kernels queued) in the open window.
    pub fn stepped(&mut self) {
        let w = self.open.as_mut().expect("a window is open while stepping");
        let n = &mut self.steps_in_phase[w.phase];
        *n += 1;
        w.steps += 1;
        w.warm |= *n <= WARMUP_STEPS;
    }

    /// Whether the open window should close now: enough host time has passed, or warm-up
    /// ends with this step (so the next window starts clean).
    pub fn due(&self) -> bool {
        self.open.as_ref().is_some_and(|w| {
            w.start.elapsed().as_secs_f64() >= WINDOW_SECONDS
                || self.steps_in_phase[w.phase] == WARMUP_STEPS
        })
    }

    /// Synchronises and closes the open window; returns its seconds per step (None when it
    /// held no step).
    pub fn close(&mut self) -> Option<f64> {
        self.sync();
        let w = self.open.take()?;
        if w.steps == 0 {
            return None;
        }
        let secs = w.start.elapsed().as_secs_f64();
        self.windows.push((w.phase, w.steps, secs, w.warm));
        Some(secs / w.steps as f64)
    }

    /// Runs `f` (evaluation, a checkpoint) outside any window and returns its seconds with it.
    pub fn apart<T>(&mut self, f: impl FnOnce() -> T) -> (T, f64) {
        self.close();
        let t = Instant::now();
        let out = f();
        self.sync();
        (out, t.elapsed().as_secs_f64())
    }

    /// Seconds of all closed windows (warm-up included).
    pub fn step_seconds(&self) -> f64 {
        self.windows.iter().map(|w| w.2).sum()
    }

    /// Median seconds per step of `phase` over its steps after warm-up, and how many steps
    /// that is: the windows' per-step times, each weighted by its steps.
    pub fn median_step(&self, phase: usize) -> Option<(f64, u64)> {
        let mut per_step: Vec<(f64, u64)> = self
            .windows
            .iter()
            .filter(|w| w.0 == phase && !w.3)
            .map(|w| (w.2 / w.1 as f64, w.1))
            .collect();
        weighted_median(&mut per_step)
    }

    /// The throughput of `phase`.
    pub fn throughput(
        &self,
        phase: usize,
        name: &str,
        tokens_per_step: u64,
        flops_per_token: f64,
        peak_tflops: Option<f64>,
    ) -> PhaseThroughput {
        let median = self.median_step(phase);
        let tokens_per_s = median.map(|(s, _)| tokens_per_step as f64 / s);
        let model_tflops = tokens_per_s.map(|t| t * flops_per_token / 1e12);
        PhaseThroughput {
            phase: name.to_string(),
            tokens_per_step,
            steps_timed: median.map_or(0, |m| m.1),
            step_time_s: median.map(|m| m.0),
            tokens_per_s,
            flops_per_token,
            model_tflops,
            mfu: model_tflops.zip(peak_tflops).map(|(a, p)| a / p),
        }
    }
}

/// The weighted median of (value, weight) pairs: the smallest value whose cumulative weight
/// reaches half the total (the lower median for an even total, as of the expanded list).
pub fn weighted_median(items: &mut [(f64, u64)]) -> Option<(f64, u64)> {
    let total: u64 = items.iter().map(|i| i.1).sum();
    if total == 0 {
        return None;
    }
    items.sort_by(|a, b| a.0.total_cmp(&b.0));
    let half = total.div_ceil(2);
    let mut acc = 0;
    for &(v, w) in items.iter() {
        acc += w;
        if acc >= half {
            return Some((v, total));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_median_is_the_median_of_the_expanded_list() {
        // Expanded: 1, 1, 1, 2, 5, 5 → the lower median of six is the 3rd: 1.
        let mut a = [(5.0, 2), (1.0, 3), (2.0, 1)];
        assert_eq!(weighted_median(&mut a), Some((1.0, 6)));
        // Expanded: 3, 4, 4, 4, 9 → the 3rd of five: 4.
        let mut b = [(4.0, 3), (9.0, 1), (3.0, 1)];
        assert_eq!(weighted_median(&mut b), Some((4.0, 5)));
        assert_eq!(weighted_median(&mut []), None);
    }

    #[test]
    fn palm_flops_of_pythia_160m() {
        // Pythia-160m: 12 layers of 12·768² + 13·768 = 7,087,872 parameters, the final
        // LayerNorm 2·768, the output layer 50,304·768; 6N + 12·12·768·2048.
        let spec = ModelSpec::preset("pythia-160m", 50_277).unwrap();
        let n = 12.0 * 7_087_872.0 + 1_536.0 + 50_304.0 * 768.0;
        let want = 6.0 * n + 12.0 * 12.0 * 768.0 * 2048.0;
        assert_eq!(flops_per_token(&spec, 2048), want);
        assert!((want / 1e9 - 0.969).abs() < 0.001, "{want}");
    }
}
