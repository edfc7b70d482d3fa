//! The GPT-NeoX / Pythia decoder: rotary embeddings on 25% of each head's dimensions (base
//! 10,000), parallel residual x + Attn(LN1 x) + MLP(LN2 x), LayerNorm eps 1e-5, GELU MLP 4×,
//! biases, untied input and output embeddings, vocabulary padded to a multiple of 128, causal
//! attention through LibTorch's scaled_dot_product_attention. Parameter names follow Hugging
//! Face's GPTNeoX (`layers.0.attention.query_key_value.weight`, ...).

use anyhow::{bail, Result};
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

/// A model shape.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ModelSpec {
    /// Preset name.
    pub preset: String,
    /// Transformer blocks.
    pub layers: i64,
    /// Hidden size.
    pub d_model: i64,
    /// Attention heads.
    pub heads: i64,
    /// Vocabulary, padded to a multiple of 128.
    pub vocab: i64,
    /// Fraction of each head's dimensions that get rotary embeddings.
    pub rotary_pct: f64,
    /// Rotary base.
    pub rotary_base: f64,
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
            rotary_pct: 0.25,
            rotary_base: 10_000.0,
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
        let d = self.d_model;
        let per_layer =
            4 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d);
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
}

impl LayerNorm {
    fn new(p: &nn::Path, name: &str, d: i64) -> LayerNorm {
        let p = p / name;
        LayerNorm {
            w: p.var("weight", &[d], Init::Const(1.0)),
            b: p.var("bias", &[d], Init::Const(0.0)),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            [*x.size().last().unwrap()],
            Some(&self.w),
            Some(&self.b),
            1e-5,
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
        let d = spec.d_model;
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
                    ln1: LayerNorm::new(&p, "input_layernorm", d),
                    ln2: LayerNorm::new(&p, "post_attention_layernorm", d),
                    qkv: Linear::new(&(&p / "attention"), "query_key_value", d, 3 * d, std, true),
                    dense: Linear::new(&(&p / "attention"), "dense", d, d, out_std, true),
                    fc_in: Linear::new(&(&p / "mlp"), "dense_h_to_4h", d, 4 * d, std, true),
                    fc_out: Linear::new(&(&p / "mlp"), "dense_4h_to_h", 4 * d, d, out_std, true),
                }
            })
            .collect();
        let ln_f = LayerNorm::new(&root, "final_layer_norm", d);
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

    /// The output embedding (for tests that need equal logits).
    pub fn embed_out_weight(&self) -> &Tensor {
        &self.embed_out.w
    }
}
