//! AdamW as `torch.optim.AdamW(fused=True)` runs it, with the whole step on the device: the
//! global gradient norm (`_foreach_norm`), clipping by a factor computed there, the fused
//! update (`_fused_adamw_`, two groups: decoupled weight decay on weight matrices only), and
//! a `found_inf` flag that makes the kernel skip the update when the loss or the gradients
//! are not finite. Nothing is read back to the host, so the CPU can queue the next step's
//! kernels while this one runs.
//!
//! The state is plain tensors (first and second moments per parameter, one float32 step
//! count), which checkpoints hold as `adam_m.*`, `adam_v.*` and `state.adam_t`.

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use crate::run_config::Optimizer;
use crate::shim;

/// AdamW's state for a list of parameters.
pub struct AdamW {
    /// (first, second) moment per parameter, in the parameters' order.
    pub moments: Vec<(Tensor, Tensor)>,
    /// Updates applied since the state was last reset (bias correction), a float32 scalar on
    /// the device; a skipped update does not count, as in torch.optim.
    step: Tensor,
    /// Indices of the parameters that take weight decay (matrices) and of those that do not.
    decay: Vec<usize>,
    no_decay: Vec<usize>,
}

/// What one [`AdamW::step`] found, as device tensors (read them only when needed).
pub struct StepOutcome {
    /// The global gradient norm before clipping (float32 scalar).
    pub grad_norm: Tensor,
    /// Whether the update was skipped (bool scalar): a non-finite loss or gradient norm.
    pub skipped: Tensor,
}

impl AdamW {
    /// Fresh state (zero moments, step 0) for `params`.
    pub fn new(params: &[(String, Tensor)], device: Device) -> AdamW {
        let moments = params
            .iter()
            .map(|(_, p)| (p.zeros_like(), p.zeros_like()))
            .collect();
        let (decay, no_decay) = (0..params.len()).partition(|&i| params[i].1.dim() >= 2);
        AdamW {
            moments,
            step: Tensor::zeros([], (Kind::Float, device)),
            decay,
            no_decay,
        }
    }

    /// Updates applied since the last reset (reads the device).
    pub fn step_count(&self) -> u64 {
        self.step.double_value(&[]) as u64
    }

    /// Sets the update count (after a checkpoint or an imported optimizer state).
    pub fn set_step_count(&mut self, t: u64) {
        let _ = self.step.fill_(t as f64);
    }

    /// Zero moments and step: a new schedule starts afresh.
    pub fn reset(&mut self) {
        tch::no_grad(|| {
            for (m, v) in self.moments.iter_mut() {
                let _ = m.zero_();
                let _ = v.zero_();
            }
        });
        self.set_step_count(0);
    }

    /// One update of `params` from their accumulated gradients at learning rate `lr`, then the
    /// gradients zeroed. `bad` (a bool scalar on the device) says the loss was not finite; the
    /// update is also skipped when the gradient norm is not. Clipping follows the rule
    /// mtkit has always used: gradients are scaled by clip / (norm + 1e-6) when norm > clip.
    pub fn step(
        &mut self,
        params: &[(String, Tensor)],
        o: &Optimizer,
        lr: f64,
        bad: &Tensor,
    ) -> Result<StepOutcome> {
        tch::no_grad(|| {
            // Every parameter takes part in the forward, so each has a gradient after backward.
            let grads: Vec<Tensor> = params.iter().map(|(_, p)| p.grad()).collect();
            let norm = shim::total_norm(&grads)?;
            let skipped = bad.logical_or(&norm.isfinite().logical_not());
            if o.grad_clip > 0.0 {
                // The factor in fp64 and then rounded to fp32, as the host-side rule did.
                let n = norm.to_kind(Kind::Double);
                let one = n.ones_like();
                let factor = (&one * o.grad_clip)
                    .g_div(&(&n + 1e-6))
                    .where_self(&n.gt(o.grad_clip), &one)
                    .to_kind(Kind::Float);
                shim::foreach_mul_(&grads, &factor)?;
            }
            let found_inf = skipped.to_kind(Kind::Float);
            let _ = self.step.g_add_scalar_(1.0);
            for (group, weight_decay) in [(&self.decay, o.weight_decay), (&self.no_decay, 0.0)] {
                let pick = |f: &dyn Fn(usize) -> Tensor| -> Vec<Tensor> {
                    group.iter().map(|&i| f(i)).collect()
                };
                shim::fused_adamw(
                    &pick(&|i| params[i].1.shallow_clone()),
                    &pick(&|i| grads[i].shallow_clone()),
                    &pick(&|i| self.moments[i].0.shallow_clone()),
                    &pick(&|i| self.moments[i].1.shallow_clone()),
                    &self.step,
                    shim::AdamW {
                        lr,
                        beta1: o.beta1,
                        beta2: o.beta2,
                        weight_decay,
                        eps: o.eps,
                    },
                    Some(&found_inf),
                )?;
            }
            // A skipped update does not count towards bias correction (torch.optim does the
            // same after its fused step).
            let _ = self.step.g_sub_(&found_inf);
            shim::foreach_zero_(&grads)?;
            Ok(StepOutcome {
                grad_norm: norm,
                skipped,
            })
        })
    }
}
