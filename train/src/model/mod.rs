//! The GPT-NeoX / Pythia decoder: rotary embeddings on 25% of each head's dimensions (base
//! 10,000), parallel residual x + Attn(LN1 x) + MLP(LN2 x), LayerNorm eps 1e-5, GELU MLP 4×,
//! biases, untied input and output embeddings, vocabulary padded to a multiple of 128, causal
//! attention through LibTorch's scaled_dot_product_attention. Parameter names follow Hugging
//! Face's GPTNeoX (`layers.0.attention.query_key_value.weight`, ...), and so does the fused
//! query_key_value layout (per head: q, k, v), so that [`crate::hf`] converts by renaming.
//! A model imported from Hugging Face may differ from the presets in vocabulary (any size),
//! MLP width, LayerNorm epsilon and rotary settings; those are fields of [`ModelSpec`].

/// A model from a checkpoint, a run folder or a Hugging Face folder.
pub mod files;

use std::sync::Mutex;

use anyhow::{bail, Result};
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

/// A model shape.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    /// Preset name, or `hf:FOLDER` for a shape read from a Hugging Face config.json.
    pub preset: String,
    /// Transformer blocks.
    pub layers: i64,
    /// Hidden size.
    pub d_model: i64,
    /// Attention heads.
    pub heads: i64,
    /// Vocabulary: the tokenizer's padded to a multiple of 128 for presets, as configured
    /// for imported models.
    pub vocab: i64,
    /// Width of the MLP's hidden layer (4 × d_model in the presets).
    pub intermediate: i64,
    /// Fraction of each head's dimensions that get rotary embeddings.
    pub rotary_pct: f64,
    /// Rotary base.
    pub rotary_base: f64,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

/// Preset names, smallest first: (name, layers, d_model, heads).
pub const PRESETS: &[(&str, i64, i64, i64)] = &[
    ("tiny", 3, 192, 3),
    ("small", 4, 384, 6),
    ("pythia-14m", 6, 128, 4),
    ("pythia-70m", 6, 512, 8),
    ("pythia-160m", 12, 768, 12),
    ("pythia-410m", 24, 1024, 16),
    ("pythia-1b", 16, 2048, 8),
];

/// `n` rounded up to a multiple of 128.
pub fn pad_vocab(n: usize) -> i64 {
    n.div_ceil(128) as i64 * 128
}

impl ModelSpec {
    /// A preset for a tokenizer with `vocab_size` ids.
    pub fn preset(name: &str, vocab_size: usize) -> Result<ModelSpec> {
        let Some(&(_, layers, d_model, heads)) = PRESETS.iter().find(|p| p.0 == name) else {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
            bail!(
                "unknown model preset `{name}` (presets: {})",
                names.join(", ")
            );
        };
        Ok(ModelSpec {
            preset: name.into(),
            layers,
            d_model,
            heads,
            vocab: pad_vocab(vocab_size),
            intermediate: 4 * d_model,
            rotary_pct: 0.25,
            rotary_base: 10_000.0,
            layer_norm_eps: 1e-5,
        })
    }

    /// Head dimension.
    pub fn head_dim(&self) -> i64 {
        self.d_model / self.heads
    }

    /// Rotary dimensions per head.
    pub fn rotary_dims(&self) -> i64 {
        (self.head_dim() as f64 * self.rotary_pct) as i64
    }

    /// (total, non-embedding) parameter counts; non-embedding leaves out both the input and
    /// the output embedding, as Pythia's counts do.
    pub fn param_counts(&self) -> (i64, i64) {
        let (d, f) = (self.d_model, self.intermediate);
        let per_layer = 4 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d);
        let non_emb = self.layers * per_layer + 2 * d;
        (non_emb + 2 * self.vocab * d, non_emb)
    }
}

struct Linear {
    w: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    fn new(p: &nn::Path, name: &str, din: i64, dout: i64, std: f64, bias: bool) -> Linear {
        let p = p / name;
        let w = p.var(
            "weight",
            &[dout, din],
            Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        );
        let b = bias.then(|| p.var("bias", &[dout], Init::Const(0.0)));
        Linear { w, b }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.w, self.b.as_ref())
    }
}

struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn new(p: &nn::Path, name: &str, d: i64, eps: f64) -> LayerNorm {
        let p = p / name;
        LayerNorm {
            w: p.var("weight", &[d], Init::Const(1.0)),
            b: p.var("bias", &[d], Init::Const(0.0)),
            eps,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            [*x.size().last().unwrap()],
            Some(&self.w),
            Some(&self.b),
            self.eps,
            true,
        )
    }
}

struct Block {
    ln1: LayerNorm,
    ln2: LayerNorm,
    qkv: Linear,
    dense: Linear,
    fc_in: Linear,
    fc_out: Linear,
}

/// A GPT-NeoX decoder whose parameters live in a `VarStore`.
pub struct GptNeox {
    /// Shape.
    pub spec: ModelSpec,
    embed_in: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    embed_out: Linear,
    rotary_cache: Mutex<Vec<RotaryTables>>,
    /// Rows per chunk of the loss head (None: [`chunk_rows`]'s default).
    loss_chunk_rows: Option<i64>,
}

/// Rotary tables for one sequence length, dtype and device.
struct RotaryTables {
    t: i64,
    kind: Kind,
    device: Device,
    cos: Tensor,
    sin: Tensor,
}

/// How a loss's gradient is taken: of the mean over scored targets (training) or of their
/// sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossReduction {
    /// Mean over scored targets.
    Mean,
    /// Sum over scored targets.
    Sum,
}

/// One micro-batch through [`GptNeox::chunked_cross_entropy`].
pub struct ChunkedLoss {
    /// Σ over scored targets of −log p(target): a 0-dim fp32 tensor (fp64 for an fp64
    /// model), on the model's device.
    pub sum: Tensor,
    /// Scored targets: a 0-dim int64 tensor.
    pub count: Tensor,
    /// When a gradient was asked for: a 0-dim tensor whose `backward()` adds the loss's
    /// gradient to every parameter (the trunk's through the final hidden states, the output
    /// layer's directly); its value means nothing.
    pub surrogate: Option<Tensor>,
}

/// Rows per chunk of the output layer by default: the fp32 log-probabilities of one chunk
/// take at most 1 GiB (5,336 rows at vocabulary 50,304), so that a 32k-token micro-batch takes
/// 7 chunks (fewer chunks: fewer passes that add a chunk's output-layer gradient).
pub fn chunk_rows(vocab: i64) -> i64 {
    ((1i64 << 30) / (4 * vocab.max(1))).max(1)
}

impl GptNeox {
    /// Builds a freshly initialised model: weights N(0, 0.02), the two output projections of
    /// each block N(0, 0.02/√(2·layers)) (GPT-2's residual scaling), biases 0, LayerNorm 1/0.
    pub fn new(vs: &nn::VarStore, spec: ModelSpec) -> GptNeox {
        let root = vs.root();
        let (d, f, eps) = (spec.d_model, spec.intermediate, spec.layer_norm_eps);
        let std = 0.02;
        let out_std = std / ((2 * spec.layers) as f64).sqrt();
        let embed_in = (&root / "embed_in").var(
            "weight",
            &[spec.vocab, d],
            Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        );
        let blocks = (0..spec.layers)
            .map(|i| {
                let p = &root / "layers" / i;
                Block {
                    ln1: LayerNorm::new(&p, "input_layernorm", d, eps),
                    ln2: LayerNorm::new(&p, "post_attention_layernorm", d, eps),
                    qkv: Linear::new(&(&p / "attention"), "query_key_value", d, 3 * d, std, true),
                    dense: Linear::new(&(&p / "attention"), "dense", d, d, out_std, true),
                    fc_in: Linear::new(&(&p / "mlp"), "dense_h_to_4h", d, f, std, true),
                    fc_out: Linear::new(&(&p / "mlp"), "dense_4h_to_h", f, d, out_std, true),
                }
            })
            .collect();
        let ln_f = LayerNorm::new(&root, "final_layer_norm", d, eps);
        let embed_out = Linear::new(&root, "embed_out", d, spec.vocab, std, false);
        GptNeox {
            spec,
            embed_in,
            blocks,
            ln_f,
            embed_out,
            rotary_cache: Mutex::new(Vec::new()),
            loss_chunk_rows: None,
        }
    }

    /// cos and sin tables [T, 1, 1, rotary_dims] in `kind` (NeoX's layout: frequencies
    /// repeated twice), computed in fp32 once per (T, kind, device) and kept: rebuilding them
    /// cost a host→device copy and a dozen kernels in every forward.
    fn rotary(&self, t: i64, kind: Kind, device: Device) -> (Tensor, Tensor) {
        let mut cache = self.rotary_cache.lock().expect("rotary cache");
        if let Some(r) = cache
            .iter()
            .find(|r| r.t == t && r.kind == kind && r.device == device)
        {
            return (r.cos.shallow_clone(), r.sin.shallow_clone());
        }
        let rd = self.spec.rotary_dims();
        let inv = Tensor::arange_start_step(0, rd, 2, (Kind::Float, Device::Cpu))
            .divide_scalar(rd as f64);
        let inv = Tensor::from(self.spec.rotary_base).pow(&inv).reciprocal();
        let pos = Tensor::arange(t, (Kind::Float, Device::Cpu));
        let freqs = pos.outer(&inv);
        let emb = Tensor::cat(&[&freqs, &freqs], -1).view([t, 1, 1, -1]);
        let table = |x: Tensor| x.to_kind(kind).to_device(device);
        let r = RotaryTables {
            t,
            kind,
            device,
            cos: table(emb.cos()),
            sin: table(emb.sin()),
        };
        let out = (r.cos.shallow_clone(), r.sin.shallow_clone());
        cache.push(r);
        out
    }

    /// Rotary embeddings on the first `rotary_dims` of each head of `x` [B, T, H, 2, hd]
    /// (queries and keys together), the rest passed through.
    fn rope(&self, x: &Tensor) -> Tensor {
        let (hd, rd) = (self.spec.head_dim(), self.spec.rotary_dims());
        if rd == 0 {
            return x.shallow_clone();
        }
        let t = x.size()[1];
        let (cos, sin) = self.rotary(t, x.kind(), x.device());
        let parts = x.split_with_sizes([rd, hd - rd], -1);
        let (xr, xp) = (&parts[0], &parts[1]);
        let halves = xr.split_with_sizes([rd / 2, rd - rd / 2], -1);
        let rotated = Tensor::cat(&[&halves[1].neg(), &halves[0]], -1);
        let xr = xr * &cos + rotated * &sin;
        Tensor::cat(&[&xr, xp], -1)
    }

    /// Hidden states [B, T, d_model] after the final LayerNorm, for token ids [B, T].
    pub fn hidden(&self, ids: &Tensor) -> Tensor {
        let (b, t) = ids.size2().expect("ids are [B, T]");
        let (h_, hd) = (self.spec.heads, self.spec.head_dim());
        let mut h = Tensor::embedding(&self.embed_in, ids, -1, false, false);
        for blk in &self.blocks {
            // The fused projection holds q, k and v per head: [B, T, H, 3, hd]. `split` and
            // `unbind` (not `narrow`) so that the backward is one concatenation instead of a
            // zero-filled full-size gradient per slice.
            let qkv = blk
                .qkv
                .forward(&blk.ln1.forward(&h))
                .view([b, t, h_, 3, hd]);
            let parts = qkv.split_with_sizes([2, 1], 3);
            let qk = self.rope(&parts[0]).unbind(3);
            let v = parts[1].squeeze_dim(3);
            // [B, H, T, hd] views of [B, T, H, hd] memory: the layout flash attention reads.
            let y = Tensor::scaled_dot_product_attention::<Tensor>(
                &qk[0].transpose(1, 2),
                &qk[1].transpose(1, 2),
                &v.transpose(1, 2),
                None,
                0.0,
                true,
                None,
                false,
            );
            let attn =
                blk.dense.forward(
                    &y.transpose(1, 2)
                        .contiguous()
                        .view([b, t, self.spec.d_model]),
                );
            let mlp = blk
                .fc_out
                .forward(&blk.fc_in.forward(&blk.ln2.forward(&h)).gelu("none"));
            // (h + attn) + mlp, the second add in place: one temporary less, same sums.
            let mut next = h + attn;
            let _ = next.g_add_(&mlp);
            h = next;
        }
        self.ln_f.forward(&h)
    }

    /// Logits [B, T, vocab] for token ids [B, T].
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        self.embed_out.forward(&self.hidden(ids))
    }

    /// Token cross-entropy of the predictions for inputs `x` [B, T] against targets `y`
    /// [B, T] (targets of -100 ignored), without ever holding the [B·T, vocab] logits whole:
    /// the output layer and the loss run over chunks of rows (logits in `compute`, the
    /// log-softmax in fp32 or the parameters' wider dtype), and when `grad` is given the
    /// gradient of the chunk's loss, softmax − one-hot, is formed right there and multiplied
    /// back through the output layer. The trunk's backward then runs from
    /// [`ChunkedLoss::surrogate`], whose gradients are exactly the loss's.
    ///
    /// `compute` is the dtype of the output layer's matmuls (bf16 under autocast; None: the
    /// parameters'). The gradient is that of the mean over scored targets times `grad`'s
    /// factor (the `1 / grad_accum` of an accumulated step) for [`LossReduction::Mean`], of
    /// the sum for [`LossReduction::Sum`].
    pub fn chunked_cross_entropy(
        &self,
        x: &Tensor,
        y: &Tensor,
        compute: Option<Kind>,
        grad: Option<(LossReduction, f64)>,
    ) -> ChunkedLoss {
        let h = self.hidden(x);
        let d = self.spec.d_model;
        let w = &self.embed_out.w;
        let acc = match w.kind() {
            Kind::Double => Kind::Double,
            _ => Kind::Float,
        };
        let compute = compute.unwrap_or(w.kind());
        let targets = y.reshape([-1]);
        let n = targets.size()[0];
        let scored = targets.ne(-100);
        let count = scored.sum(Kind::Int64);
        // A valid index everywhere; the rows of ignored targets are weighted 0 below.
        let index = targets.clamp_min(0).unsqueeze(1);
        let weight = scored.to_kind(acc);
        let rows = self
            .loss_chunk_rows
            .unwrap_or_else(|| chunk_rows(self.spec.vocab))
            .clamp(1, n.max(1));
        let (sum, grads) = tch::no_grad(|| {
            let hs = h.detach().view([-1, d]);
            let wc = w.detach().to_kind(compute);
            // Per-row factor of the gradient: 0 for ignored targets.
            let row_grad = grad.map(|(reduction, factor)| match reduction {
                LossReduction::Mean => &weight * factor / count.to_kind(acc),
                LossReduction::Sum => &weight * factor,
            });
            let mut sum = Tensor::zeros([], (acc, h.device()));
            let mut grad_h = Vec::new();
            let mut grad_w: Option<Tensor> = None;
            let mut start = 0;
            while start < n {
                let len = rows.min(n - start);
                let hc_acc = hs.narrow(0, start, len);
                let hc = hc_acc.to_kind(compute);
                let ic = index.narrow(0, start, len);
                let logp = hc.matmul(&wc.tr()).log_softmax(-1, acc);
                let logp_target = logp.gather(1, &ic, false).squeeze_dim(1);
                sum -= (&logp_target * weight.narrow(0, start, len)).sum(acc);
                if let Some(row_grad) = &row_grad {
                    // softmax − one-hot in the matmuls' dtype; the target's entry, p − 1,
                    // computed in `acc` and rounded once (in bf16, p ≈ 1 would round to 1).
                    let p = Tensor::empty([len, self.spec.vocab], (compute, h.device()));
                    let mut p = logp.exp_out(&p);
                    let p_target = (logp_target.exp() - 1.0).to_kind(compute).unsqueeze(1);
                    let _ = p.scatter_(1, &ic, &p_target);
                    let s = row_grad.narrow(0, start, len).unsqueeze(1);
                    grad_h.push(p.matmul(&wc).to_kind(acc) * &s);
                    let gw = p.tr().matmul(&(&hc_acc * &s).to_kind(compute)).to_kind(acc);
                    grad_w = Some(match grad_w {
                        None => gw,
                        Some(mut g) => {
                            let _ = g.g_add_(&gw);
                            g
                        }
                    });
                }
                start += len;
            }
            let grads = row_grad.map(|_| (Tensor::cat(&grad_h, 0), grad_w));
            (sum, grads)
        });
        let surrogate = grads.map(|(grad_h, grad_w)| {
            let grad_h = grad_h.view(h.size().as_slice()).to_kind(h.kind());
            let mut s = (&h * &grad_h).sum(h.kind()).to_kind(acc);
            if let Some(gw) = grad_w {
                s += (w * gw.to_kind(w.kind())).sum(w.kind()).to_kind(acc);
            }
            s
        });
        ChunkedLoss {
            sum,
            count,
            surrogate,
        }
    }

    /// Sets the rows per chunk of [`GptNeox::chunked_cross_entropy`] (tests use a few rows to
    /// exercise many chunks; the default is [`chunk_rows`]).
    pub fn set_loss_chunk_rows(&mut self, rows: i64) {
        self.loss_chunk_rows = Some(rows.max(1));
    }

    /// The output embedding (for tests that need equal logits).
    pub fn embed_out_weight(&self) -> &Tensor {
        &self.embed_out.w
    }
}

impl GptNeox {
    /// Greedy decoding: appends up to `max_new` ids to `prompt`, each the arg-max of the last
    /// position's logits, and stops after `eos` when one is given (as transformers' `generate`
    /// does with the model's eos_token_id). The whole sequence runs again at every step (no
    /// KV cache): meant for checks and small models. Returns the new ids only.
    pub fn generate_greedy(
        &self,
        prompt: &[i64],
        max_new: usize,
        eos: Option<i64>,
        device: Device,
    ) -> Vec<i64> {
        let mut ids = prompt.to_vec();
        tch::no_grad(|| {
            for _ in 0..max_new {
                let x = Tensor::from_slice(&ids).to_device(device).unsqueeze(0);
                let next = self
                    .forward(&x)
                    .select(1, -1)
                    .argmax(-1, false)
                    .int64_value(&[0]);
                ids.push(next);
                if Some(next) == eos {
                    break;
                }
            }
        });
        ids.split_off(prompt.len())
    }
}
