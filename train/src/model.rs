//! The GPT-NeoX / Pythia decoder: rotary embeddings on 25% of each head's dimensions (base
//! 10,000), parallel residual x + Attn(LN1 x) + MLP(LN2 x), LayerNorm eps 1e-5, GELU MLP 4×,
//! biases, untied input and output embeddings, vocabulary padded to a multiple of 128, causal
//! attention through LibTorch's scaled_dot_product_attention. Parameter names follow Hugging
//! Face's GPTNeoX (`layers.0.attention.query_key_value.weight`, ...), and so does the fused
//! query_key_value layout (per head: q, k, v), so that [`crate::hf`] converts by renaming.
//! A model imported from Hugging Face may differ from the presets in vocabulary (any size),
//! MLP width, LayerNorm epsilon and rotary settings; those are fields of [`ModelSpec`].

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
        }
    }

    /// cos and sin tables [T, rotary_dims] (NeoX's layout: frequencies repeated twice).
    fn rotary(&self, t: i64, device: Device) -> (Tensor, Tensor) {
        let rd = self.spec.rotary_dims();
        let inv =
            Tensor::arange_start_step(0, rd, 2, (Kind::Float, device)).divide_scalar(rd as f64);
        let inv = Tensor::from(self.spec.rotary_base)
            .to_device(device)
            .pow(&inv)
            .reciprocal();
        let pos = Tensor::arange(t, (Kind::Float, device));
        let freqs = pos.outer(&inv);
        let emb = Tensor::cat(&[&freqs, &freqs], -1);
        (emb.cos(), emb.sin())
    }

    /// Logits [B, T, vocab] for token ids [B, T].
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        let (b, t) = ids.size2().expect("ids are [B, T]");
        let (h_, hd, rd) = (
            self.spec.heads,
            self.spec.head_dim(),
            self.spec.rotary_dims(),
        );
        let (cos, sin) = self.rotary(t, ids.device());
        let rope = |x: &Tensor| -> Tensor {
            let xr = x.narrow(-1, 0, rd);
            let xp = x.narrow(-1, rd, hd - rd);
            let x1 = xr.narrow(-1, 0, rd / 2);
            let x2 = xr.narrow(-1, rd / 2, rd / 2);
            let rotated = Tensor::cat(&[&x2.neg(), &x1], -1);
            let xr = &xr * &cos.to_kind(xr.kind()) + rotated * &sin.to_kind(xr.kind());
            Tensor::cat(&[&xr, &xp], -1)
        };
        let mut h = Tensor::embedding(&self.embed_in, ids, -1, false, false);
        for blk in &self.blocks {
            let qkv = blk
                .qkv
                .forward(&blk.ln1.forward(&h))
                .view([b, t, h_, 3 * hd]);
            let q = rope(&qkv.narrow(-1, 0, hd).transpose(1, 2));
            let k = rope(&qkv.narrow(-1, hd, hd).transpose(1, 2));
            let v = qkv.narrow(-1, 2 * hd, hd).transpose(1, 2);
            let y = Tensor::scaled_dot_product_attention::<Tensor>(
                &q, &k, &v, None, 0.0, true, None, false,
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
            h = h + attn + mlp;
        }
        self.embed_out.forward(&self.ln_f.forward(&h))
    }

    /// Token cross-entropy of the predictions for inputs `x` [B, T] against targets `y`
    /// [B, T] (targets of -100 ignored), computed in fp32 whatever the logits' dtype.
    pub fn cross_entropy(&self, x: &Tensor, y: &Tensor, reduction: tch::Reduction) -> Tensor {
        let logits = self.forward(x);
        let v = logits.size()[2];
        logits
            .view([-1, v])
            .to_kind(Kind::Float)
            .cross_entropy_loss::<Tensor>(&y.view([-1]), None, reduction, -100, 0.0)
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
