//! The GPU-speed pieces of the trainer, checked on the CPU against second methods: the fused
//! AdamW step against AdamW written out by hand (the update mtkit used before), the chunked
//! cross-entropy against autograd through the whole logits in fp64, the split/unbind forward
//! against the narrow-based one it replaced, the shim's autocast and SDPA settings, skipped
//! steps, and gradient accumulation.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;

use std::collections::HashMap;

use mtkit::export::run_config::{Optimizer, RunConfig};
use mtkit_train::model::{GptNeox, LossReduction, ModelSpec};
use mtkit_train::optim::AdamW;
use mtkit_train::shim::{self, SdpBackend};
use mtkit_train::trainer::Trainer;
use tch::{nn, Device, Kind, Tensor};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

/// AdamW as mtkit wrote it out before the fused kernel (and as torch.optim.AdamW's reference
/// loop does): global-norm clipping, then per tensor m ← β1 m + (1 − β1) g,
/// v ← β2 v + (1 − β2) g², p ← p (1 − lr wd) − lr / bc1 · m / (√(v / bc2) + ε).
fn reference_adamw(
    params: &mut [Tensor],
    grads: &mut [Tensor],
    moments: &mut [(Tensor, Tensor)],
    t: i32,
    lr: f64,
    o: &Optimizer,
) {
    let norm = grads
        .iter()
        .map(|g| {
            g.to_kind(Kind::Double)
                .square()
                .sum(Kind::Double)
                .double_value(&[])
        })
        .sum::<f64>()
        .sqrt();
    if o.grad_clip > 0.0 && norm > o.grad_clip {
        let scale = o.grad_clip / (norm + 1e-6);
        for g in grads.iter_mut() {
            let _ = g.g_mul_scalar_(scale);
        }
    }
    let bc1 = 1.0 - o.beta1.powi(t);
    let bc2 = 1.0 - o.beta2.powi(t);
    for ((p, g), (m, v)) in params.iter_mut().zip(grads.iter()).zip(moments.iter_mut()) {
        let _ = m.lerp_(g, 1.0 - o.beta1);
        let _ = v.lerp_(&g.square(), 1.0 - o.beta2);
        if p.dim() >= 2 {
            let _ = p.g_mul_scalar_(1.0 - lr * o.weight_decay);
        }
        let denom = (v.sqrt() / bc2.sqrt()) + o.eps;
        let _ = p.g_sub_(&(&*m / denom * (lr / bc1)));
    }
}

/// A matrix and two vectors with gradients `grads` (set through a backward pass).
fn set_grads(params: &[(String, Tensor)], grads: &[Tensor]) {
    let loss = params
        .iter()
        .zip(grads)
        .map(|((_, p), g)| (p * g).sum(Kind::Float))
        .reduce(|a, b| a + b)
        .unwrap();
    loss.backward();
}

#[test]
fn fused_adamw_matches_the_written_out_update_over_20_steps() {
    tch::manual_seed(7);
    let shapes: [&[i64]; 3] = [&[16, 8], &[8], &[5, 3]];
    let params: Vec<(String, Tensor)> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                format!("p{i}"),
                Tensor::randn(*s, (Kind::Float, Device::Cpu)).set_requires_grad(true),
            )
        })
        .collect();
    let mut ref_params: Vec<Tensor> = params.iter().map(|(_, p)| p.detach().copy()).collect();
    let mut ref_moments: Vec<(Tensor, Tensor)> = ref_params
        .iter()
        .map(|p| (p.zeros_like(), p.zeros_like()))
        .collect();
    let mut opt = AdamW::new(&params, Device::Cpu);
    let o = Optimizer::default();
    let no = Tensor::from(false);
    let mut clipped = 0;
    for step in 1..=20 {
        // Gradients of varied size, so that clipping acts on some steps and not on others.
        let scale = if step % 3 == 0 { 2.0 } else { 0.05 };
        let grads: Vec<Tensor> = shapes
            .iter()
            .map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu)) * scale)
            .collect();
        let want_norm = grads
            .iter()
            .map(|g| {
                g.to_kind(Kind::Double)
                    .square()
                    .sum(Kind::Double)
                    .double_value(&[])
            })
            .sum::<f64>()
            .sqrt();
        clipped += (want_norm > o.grad_clip) as i32;
        set_grads(&params, &grads);
        let lr = 1e-2 / step as f64;
        let outcome = opt.step(&params, &o, lr, &no).unwrap();
        let got_norm = outcome.grad_norm.double_value(&[]);
        assert!(
            (got_norm - want_norm).abs() <= 1e-6 * want_norm,
            "step {step}: norm {got_norm} vs {want_norm}"
        );
        assert!(!bool::try_from(&outcome.skipped).unwrap());
        let mut ref_grads: Vec<Tensor> = grads.iter().map(|g| g.copy()).collect();
        tch::no_grad(|| {
            reference_adamw(
                &mut ref_params,
                &mut ref_grads,
                &mut ref_moments,
                step,
                lr,
                &o,
            )
        });
        for (i, (_, p)) in params.iter().enumerate() {
            assert!(
                max_abs_diff(p, &ref_params[i]) <= 1e-6,
                "step {step}, p{i}: {}",
                max_abs_diff(p, &ref_params[i])
            );
            assert!(max_abs_diff(&opt.moments[i].0, &ref_moments[i].0) <= 1e-6);
            assert!(max_abs_diff(&opt.moments[i].1, &ref_moments[i].1) <= 1e-6);
            // The step zeroes the gradients.
            assert_eq!(p.grad().abs().sum(Kind::Float).double_value(&[]), 0.0);
        }
    }
    assert!(
        (3..20).contains(&clipped),
        "clipping acted on {clipped} of 20 steps"
    );
    assert_eq!(opt.step_count(), 20);
}

#[test]
fn a_flagged_step_changes_nothing_and_does_not_count() {
    let params = vec![(
        "w".to_string(),
        Tensor::from_slice(&[1.0f32, -2.0, 3.0, 0.5])
            .view([2, 2])
            .set_requires_grad(true),
    )];
    let mut opt = AdamW::new(&params, Device::Cpu);
    let o = Optimizer::default();
    set_grads(
        &params,
        &[Tensor::from_slice(&[0.1f32, 0.2, 0.3, 0.4]).view([2, 2])],
    );
    opt.step(&params, &o, 1e-2, &Tensor::from(false)).unwrap();
    let before = params[0].1.detach().copy();
    let (m, v) = (opt.moments[0].0.copy(), opt.moments[0].1.copy());
    // A NaN gradient (the loss was fine): skipped all the same.
    set_grads(
        &params,
        &[Tensor::from_slice(&[f32::NAN, 0.2, 0.3, 0.4]).view([2, 2])],
    );
    let out = opt.step(&params, &o, 1e-2, &Tensor::from(false)).unwrap();
    assert!(bool::try_from(&out.skipped).unwrap());
    // A finite gradient with the loss flagged: skipped.
    set_grads(
        &params,
        &[Tensor::from_slice(&[0.5f32, 0.2, 0.3, 0.4]).view([2, 2])],
    );
    let out = opt.step(&params, &o, 1e-2, &Tensor::from(true)).unwrap();
    assert!(bool::try_from(&out.skipped).unwrap());
    assert_eq!(max_abs_diff(&params[0].1, &before), 0.0);
    assert_eq!(max_abs_diff(&opt.moments[0].0, &m), 0.0);
    assert_eq!(max_abs_diff(&opt.moments[0].1, &v), 0.0);
    assert_eq!(opt.step_count(), 1);
    assert_eq!(
        params[0].1.grad().abs().sum(Kind::Float).double_value(&[]),
        0.0
    );
}

fn small_spec(vocab: i64) -> ModelSpec {
    ModelSpec {
        preset: "test".into(),
        layers: 2,
        d_model: 48,
        heads: 4,
        vocab,
        intermediate: 96,
        rotary_pct: 0.5,
        rotary_base: 10_000.0,
        layer_norm_eps: 1e-5,
    }
}

fn grads_of(vs: &nn::VarStore, names: &[&str]) -> Vec<Tensor> {
    let vars = vs.variables();
    names.iter().map(|n| vars[*n].grad().copy()).collect()
}

fn zero_grads(vs: &nn::VarStore) {
    for (_, v) in vs.variables() {
        let mut g = v.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

#[test]
fn chunked_cross_entropy_equals_autograd_through_the_whole_logits_in_fp64() {
    tch::manual_seed(3);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let mut model = GptNeox::new(&vs, small_spec(67));
    vs.double();
    // Randomise the LayerNorms and biases too, so that every parameter matters.
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            let noise = v.randn_like() * 0.05;
            let _ = v.g_add_(&noise);
        }
    });
    // 7 rows a chunk over 2 × 19 = 38 rows: six chunks and a short last one.
    model.set_loss_chunk_rows(7);
    let x = Tensor::randint(67, [2, 19], (Kind::Int64, Device::Cpu));
    let y = Tensor::randint(67, [2, 19], (Kind::Int64, Device::Cpu));
    // Ignored targets: a prompt at the start of row 0, padding at the end of row 1.
    let _ = y.narrow(1, 0, 5).get(0).fill_(-100);
    let _ = y.narrow(1, 12, 7).get(1).fill_(-100);
    let names = [
        "embed_out.weight",
        "final_layer_norm.weight",
        "final_layer_norm.bias",
        "layers.0.attention.query_key_value.weight",
        "layers.1.mlp.dense_h_to_4h.bias",
        "embed_in.weight",
    ];
    for (reduction, factor) in [(LossReduction::Mean, 1.0), (LossReduction::Sum, 0.5)] {
        // Autograd through the full [38, 67] logits.
        zero_grads(&vs);
        let logits = model.forward(&x).view([-1, 67]);
        let r = match reduction {
            LossReduction::Mean => tch::Reduction::Mean,
            LossReduction::Sum => tch::Reduction::Sum,
        };
        let full = logits.cross_entropy_loss::<Tensor>(&y.view([-1]), None, r, -100, 0.0);
        (&full * factor).backward();
        let want = grads_of(&vs, &names);
        let want_loss = full.double_value(&[]);
        // The chunked head.
        zero_grads(&vs);
        let out = model.chunked_cross_entropy(&x, &y, None, Some((reduction, factor)));
        assert_eq!(out.count.int64_value(&[]), 38 - 5 - 7);
        let got_loss = match reduction {
            LossReduction::Mean => out.sum.double_value(&[]) / 26.0,
            LossReduction::Sum => out.sum.double_value(&[]),
        };
        assert!(
            (got_loss - want_loss).abs() <= 1e-10 * want_loss.abs().max(1.0),
            "{reduction:?}: loss {got_loss} vs {want_loss}"
        );
        out.surrogate.unwrap().backward();
        for (name, (g, w)) in names.iter().zip(grads_of(&vs, &names).iter().zip(&want)) {
            let d = max_abs_diff(g, w);
            let scale = w.abs().max().double_value(&[]);
            assert!(scale > 0.0, "{name} has a gradient");
            assert!(
                d <= 1e-10 * scale,
                "{reduction:?} {name}: |Δ| {d} (scale {scale})"
            );
        }
    }
}

#[test]
fn chunked_cross_entropy_in_bf16_under_cpu_autocast_is_close_to_fp32() {
    tch::manual_seed(4);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut model = GptNeox::new(&vs, small_spec(131));
    model.set_loss_chunk_rows(16);
    let x = Tensor::randint(131, [3, 21], (Kind::Int64, Device::Cpu));
    let y = Tensor::randint(131, [3, 21], (Kind::Int64, Device::Cpu));
    let fp32 = model.chunked_cross_entropy(&x, &y, None, Some((LossReduction::Mean, 1.0)));
    let bf16 = shim::autocast(Device::Cpu, Kind::BFloat16, || {
        model.chunked_cross_entropy(
            &x,
            &y,
            Some(Kind::BFloat16),
            Some((LossReduction::Mean, 1.0)),
        )
    });
    // The log-softmax and the sum stay fp32 in both.
    assert_eq!(bf16.sum.kind(), Kind::Float);
    let (a, b) = (fp32.sum.double_value(&[]), bf16.sum.double_value(&[]));
    // At initialisation the loss is ≈ ln(131) per token: bf16 matmuls move it by ~1e-3.
    assert!((a - b).abs() <= 1e-2 * a, "fp32 {a} vs bf16 {b}");
    fp32.surrogate.unwrap().backward();
    let g32 = grads_of(
        &vs,
        &[
            "embed_out.weight",
            "layers.0.attention.query_key_value.weight",
        ],
    );
    zero_grads(&vs);
    bf16.surrogate.unwrap().backward();
    let g16 = grads_of(
        &vs,
        &[
            "embed_out.weight",
            "layers.0.attention.query_key_value.weight",
        ],
    );
    for (a, b) in g32.iter().zip(&g16) {
        let rel = max_abs_diff(a, b) / a.abs().max().double_value(&[]);
        assert!(
            rel < 5e-2,
            "bf16 gradient off by {rel} of its largest entry"
        );
    }
}

/// The forward as mtkit computed it before split/unbind and the rotary cache: q, k and v cut
/// from the fused projection with `narrow`, rope on each in [B, H, T, hd], tables built for
/// every call. Written against the named parameters.
fn narrow_forward(vars: &HashMap<String, Tensor>, spec: &ModelSpec, ids: &Tensor) -> Tensor {
    let (b, t) = ids.size2().unwrap();
    let (h_, hd, rd) = (spec.heads, spec.head_dim(), spec.rotary_dims());
    let v = |n: &str| &vars[n];
    let ln = |x: &Tensor, p: &str| {
        x.layer_norm(
            [spec.d_model],
            Some(v(&format!("{p}.weight"))),
            Some(v(&format!("{p}.bias"))),
            spec.layer_norm_eps,
            true,
        )
    };
    let lin =
        |x: &Tensor, p: &str| x.linear(v(&format!("{p}.weight")), Some(v(&format!("{p}.bias"))));
    let inv =
        Tensor::arange_start_step(0, rd, 2, (Kind::Float, Device::Cpu)).divide_scalar(rd as f64);
    let inv = Tensor::from(spec.rotary_base).pow(&inv).reciprocal();
    let freqs = Tensor::arange(t, (Kind::Float, Device::Cpu)).outer(&inv);
    let emb = Tensor::cat(&[&freqs, &freqs], -1);
    let (cos, sin) = (emb.cos(), emb.sin());
    let rope = |x: &Tensor| -> Tensor {
        let xr = x.narrow(-1, 0, rd);
        let xp = x.narrow(-1, rd, hd - rd);
        let x1 = xr.narrow(-1, 0, rd / 2);
        let x2 = xr.narrow(-1, rd / 2, rd / 2);
        let rotated = Tensor::cat(&[&x2.neg(), &x1], -1);
        let xr = &xr * &cos + rotated * &sin;
        Tensor::cat(&[&xr, &xp], -1)
    };
    let mut h = Tensor::embedding(v("embed_in.weight"), ids, -1, false, false);
    for l in 0..spec.layers {
        let p = format!("layers.{l}");
        let qkv = lin(
            &ln(&h, &format!("{p}.input_layernorm")),
            &format!("{p}.attention.query_key_value"),
        )
        .view([b, t, h_, 3 * hd]);
        let q = rope(&qkv.narrow(-1, 0, hd).transpose(1, 2));
        let k = rope(&qkv.narrow(-1, hd, hd).transpose(1, 2));
        let val = qkv.narrow(-1, 2 * hd, hd).transpose(1, 2);
        let y = Tensor::scaled_dot_product_attention::<Tensor>(
            &q, &k, &val, None, 0.0, true, None, false,
        );
        let attn = lin(
            &y.transpose(1, 2).contiguous().view([b, t, spec.d_model]),
            &format!("{p}.attention.dense"),
        );
        let mlp = lin(
            &lin(
                &ln(&h, &format!("{p}.post_attention_layernorm")),
                &format!("{p}.mlp.dense_h_to_4h"),
            )
            .gelu("none"),
            &format!("{p}.mlp.dense_4h_to_h"),
        );
        h = h + attn + mlp;
    }
    ln(&h, "final_layer_norm").matmul(&v("embed_out.weight").tr())
}

#[test]
fn split_unbind_forward_with_cached_rope_is_bit_identical_to_the_narrow_forward() {
    tch::manual_seed(11);
    for spec in [small_spec(97), ModelSpec::preset("tiny", 100).unwrap()] {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = GptNeox::new(&vs, spec.clone());
        let vars = vs.variables();
        tch::no_grad(|| {
            for t in [17, 33, 17] {
                // The second call at T = 17 reads the cached tables.
                let ids = Tensor::randint(spec.vocab, [2, t], (Kind::Int64, Device::Cpu));
                let got = model.forward(&ids);
                let want = narrow_forward(&vars, &spec, &ids);
                assert_eq!(max_abs_diff(&got, &want), 0.0, "{} at T = {t}", spec.preset);
            }
        });
    }
}

#[test]
fn the_shim_sets_the_autocast_dtype_and_restores_it() {
    for device in [Device::Cpu, Device::Cuda(0)] {
        let before = shim::autocast_state(device);
        assert!(!before.1, "{device:?}: autocast starts off");
        let inside = shim::autocast(device, Kind::BFloat16, || shim::autocast_state(device));
        assert_eq!(inside, (Kind::BFloat16, true), "{device:?}");
        assert_eq!(shim::autocast_state(device), before, "{device:?} restored");
    }
    // LibTorch's own CUDA default is fp16, the reason the shim exists.
    assert_eq!(shim::autocast_state(Device::Cuda(0)).0, Kind::Half);
}

#[test]
fn the_sdpa_backend_order_round_trips() {
    let before = shim::sdp_priority().unwrap();
    assert!(before.contains(&SdpBackend::Math), "{before:?}");
    let order = [
        SdpBackend::Cudnn,
        SdpBackend::Flash,
        SdpBackend::Efficient,
        SdpBackend::Math,
        SdpBackend::Overrideable,
    ];
    assert_eq!(before.len(), order.len(), "{before:?}");
    shim::set_sdp_priority(&order).unwrap();
    assert_eq!(shim::sdp_priority().unwrap(), order);
    shim::set_sdp_priority(&before).unwrap();
    assert_eq!(shim::sdp_priority().unwrap(), before);
    assert_eq!(
        shim::cuda_capability(0),
        None,
        "no CUDA runtime on this machine"
    );
}

const RUN: &str = r#"
[run]
name = "k"
preset = "tiny"
seed = 9
data = "tokens"
validation = ["a"]
eval_every = 100
eval_tokens = 256
checkpoint_every = 100

[[phases]]
name = "pre"
kind = "pretrain"
steps = 3
batch_size = BATCH
grad_accum = ACCUM
seq_len = 16
mixture = { a = 1.0 }
schedule = { lr = 3e-3, min_lr = 3e-4, warmup = 1 }
"#;

#[test]
fn one_batch_of_four_has_the_gradient_of_two_accumulated_batches_of_two() {
    // What a step of batch 4 and one of batch 2 × 2 micro-batches add up to (the trainer
    // weights each micro-batch's mean by 1 / grad_accum): the same gradients. (Weights after
    // AdamW steps are no test of this: its first updates are ±lr by the gradient's sign,
    // which fp32 rounding flips where a gradient entry is near zero.)
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = GptNeox::new(&vs, small_spec(89));
    let x = Tensor::randint(89, [4, 24], (Kind::Int64, Device::Cpu));
    let y = Tensor::randint(89, [4, 24], (Kind::Int64, Device::Cpu));
    let names: Vec<String> = vs.variables().into_keys().collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let whole = model.chunked_cross_entropy(&x, &y, None, Some((LossReduction::Mean, 1.0)));
    whole.surrogate.unwrap().backward();
    let want = grads_of(&vs, &names);
    zero_grads(&vs);
    for half in 0..2 {
        let (xh, yh) = (x.narrow(0, 2 * half, 2), y.narrow(0, 2 * half, 2));
        let out = model.chunked_cross_entropy(&xh, &yh, None, Some((LossReduction::Mean, 0.5)));
        out.surrogate.unwrap().backward();
    }
    for (name, (g, w)) in names.iter().zip(grads_of(&vs, &names).iter().zip(&want)) {
        assert!(max_abs_diff(g, w) <= 1e-6, "{name}: {}", max_abs_diff(g, w));
    }
}

#[test]
fn steps_that_are_all_skipped_stop_the_run_with_the_cause() {
    let sb = Sandbox::new();
    word_corpora(&sb);
    let text = RUN
        .replace("BATCH", "2")
        .replace("ACCUM", "1")
        .replace("steps = 3", "steps = 12");
    let path = sb.write("nan.toml", text);
    let (cfg, data) = RunConfig::load(&path).unwrap();
    let mut t = Trainer::new(cfg, &data, &sb.path("nan"), Device::Cpu, false).unwrap();
    // A NaN in one weight makes every loss NaN: each step is skipped, the weights stay.
    tch::no_grad(|| {
        let (_, w) = t
            .named_parameters()
            .iter()
            .find(|(n, _)| n == "layers.0.mlp.dense_h_to_4h.weight")
            .unwrap();
        let _ = w.shallow_clone().get(0).get(0).fill_(f64::NAN);
    });
    let before: Vec<Tensor> = t
        .named_parameters()
        .iter()
        .map(|(_, p)| p.detach().copy())
        .collect();
    let err = t
        .run(&mtkit_train::trainer::Quiet, None)
        .expect_err("the run stops");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("steps in a row") && msg.contains("lower the learning rate"),
        "{msg}"
    );
    for ((n, p), b) in t.named_parameters().iter().zip(&before) {
        let same = p.isnan().eq_tensor(&b.isnan()).all().int64_value(&[]) == 1
            && p.nan_to_num(0.0, None, None)
                .eq_tensor(&b.nan_to_num(0.0, None, None))
                .all()
                .int64_value(&[])
                == 1;
        assert!(same, "{n} changed although every step was skipped");
    }
}
