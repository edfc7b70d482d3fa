"""The trainer benchmark's other side: the same GPT-NeoX model, batch, data and optimizer as
`mtkit train`, written the usual way in PyTorch (nanoGPT style), for `make bench` on the CPU and
for scripts/gpu-check.sh on a GPU.

    python reference_train.py TOKENS_DIR PRESET BATCH SEQ WARMUP_STEPS MEASURED_STEPS [options]

Reads TOKENS_DIR/train.tokens (mtkit's token file: a 32-byte header, then ids), takes
consecutive windows as mtkit's sampler does for a one-source mixture, trains with
torch.optim.AdamW (decay on matrices only, as mtkit), global-norm clipping at 1.0 and warmup +
cosine learning rates (mtkit's schedule), and prints one JSON line: tokens/s and the median step
time over the measured steps, each window of --window steps timed between two device
synchronisations (as mtkit times its steps), the losses, torch's version.

Options for the GPU comparisons (defaults: the CPU bench as it always ran):
  --device cuda          run on the GPU
  --bf16                 bf16 autocast around forward and loss (the loss itself in fp32)
  --fused                torch.optim.AdamW(fused=True)
  --compile              torch.compile the model
  --model hf             transformers' GPTNeoXForCausalLM (sdpa attention) instead of the lean
                         model below; with --init DIR its weights come from that Hugging Face
                         folder, and --save-init DIR writes a freshly initialised one there
  --lr, --min-lr, --warmup, --total  the schedule (mtkit's lr_at)
  --loss-every N         also report the mean training loss of every N steps (all steps,
                         warm-up included, from step 1), as mtkit's metrics.csv rows do
"""

import argparse
import json
import math
import os
import statistics
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {"tiny": (3, 192, 3), "small": (4, 384, 6), "pythia-14m": (6, 128, 4),
           "pythia-70m": (6, 512, 8), "pythia-160m": (12, 768, 12)}


class Block(nn.Module):
    def __init__(self, d, heads, layers):
        super().__init__()
        self.heads, self.hd = heads, d // heads
        self.rd = int(self.hd * 0.25)
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, 3 * d)
        self.dense = nn.Linear(d, d)
        self.fc_in = nn.Linear(d, 4 * d)
        self.fc_out = nn.Linear(4 * d, d)
        out_std = 0.02 / math.sqrt(2 * layers)
        for lin, std in ((self.qkv, 0.02), (self.dense, out_std), (self.fc_in, 0.02), (self.fc_out, out_std)):
            nn.init.normal_(lin.weight, 0.0, std)
            nn.init.zeros_(lin.bias)

    def rope(self, x, cos, sin):
        xr, xp = x[..., : self.rd], x[..., self.rd :]
        x1, x2 = xr[..., : self.rd // 2], xr[..., self.rd // 2 :]
        xr = xr * cos + torch.cat((-x2, x1), dim=-1) * sin
        return torch.cat((xr, xp), dim=-1)

    def forward(self, h, cos, sin):
        b, t, d = h.shape
        qkv = self.qkv(self.ln1(h)).view(b, t, self.heads, 3 * self.hd)
        q = self.rope(qkv[..., : self.hd].transpose(1, 2), cos, sin)
        k = self.rope(qkv[..., self.hd : 2 * self.hd].transpose(1, 2), cos, sin)
        v = qkv[..., 2 * self.hd :].transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        attn = self.dense(y.transpose(1, 2).contiguous().view(b, t, d))
        mlp = self.fc_out(F.gelu(self.fc_in(self.ln2(h))))
        return h + attn + mlp


class GPTNeoX(nn.Module):
    def __init__(self, layers, d, heads, vocab):
        super().__init__()
        self.embed_in = nn.Embedding(vocab, d)
        nn.init.normal_(self.embed_in.weight, 0.0, 0.02)
        self.blocks = nn.ModuleList(Block(d, heads, layers) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        self.embed_out = nn.Linear(d, vocab, bias=False)
        nn.init.normal_(self.embed_out.weight, 0.0, 0.02)
        rd = int(d // heads * 0.25)
        self.register_buffer("inv", 1.0 / (10000.0 ** (torch.arange(0, rd, 2, dtype=torch.float32) / rd)),
                             persistent=False)

    def forward(self, ids):
        t = ids.shape[1]
        freqs = torch.outer(torch.arange(t, dtype=torch.float32, device=ids.device), self.inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        h = self.embed_in(ids)
        for blk in self.blocks:
            h = blk(h, cos, sin)
        return self.embed_out(self.ln_f(h))


def hf_model(layers, d, heads, vocab, init):
    """transformers' GPT-NeoX with Pythia's settings, from `init` when given; returns a module
    whose forward maps ids to logits."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    if init:
        model = GPTNeoXForCausalLM.from_pretrained(init, dtype=torch.float32, attn_implementation="sdpa")
    else:
        cfg = GPTNeoXConfig(vocab_size=vocab, hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                            intermediate_size=4 * d, rotary_pct=0.25, rotary_emb_base=10000.0,
                            max_position_embeddings=2048, layer_norm_eps=1e-5, use_parallel_residual=True,
                            hidden_act="gelu", tie_word_embeddings=False, bos_token_id=0, eos_token_id=0,
                            attn_implementation="sdpa")
        model = GPTNeoXForCausalLM(cfg)

    class Logits(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids):
            return self.m(input_ids=ids, use_cache=False).logits

    return Logits(model)


def main():
    ap = argparse.ArgumentParser()
    for name in ("tokens_dir", "preset"):
        ap.add_argument(name)
    for name in ("batch", "seq", "warmup_steps", "measured"):
        ap.add_argument(name, type=int)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--fused", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--model", choices=("lean", "hf"), default="lean")
    ap.add_argument("--init")
    ap.add_argument("--save-init")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=6)
    ap.add_argument("--total", type=int, default=0, help="schedule steps (0: warmup_steps + measured)")
    ap.add_argument("--window", type=int, default=5, help="steps per timed window")
    ap.add_argument("--loss-every", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()

    path = os.path.join(a.tokens_dir, "train.tokens")
    with open(path, "rb") as f:
        magic, _ver, width, vocab, _eos, n = struct.unpack("<8sIIIIQ", f.read(32))
    assert magic == b"MTKTOKS\0", path
    ids = np.memmap(path, dtype=np.uint16 if width == 2 else np.uint32, mode="r", offset=32, shape=(n,))
    layers, d, heads = PRESETS[a.preset]
    padded = (vocab + 127) // 128 * 128
    dev = torch.device(a.device)
    torch.manual_seed(a.seed)
    if a.model == "hf":
        model = hf_model(layers, d, heads, padded, a.init)
        if a.save_init:
            model.m.save_pretrained(a.save_init)
            print(json.dumps({"saved": a.save_init}))
            return
    else:
        model = GPTNeoX(layers, d, heads, padded)
    model = model.to(dev)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    steps = a.warmup_steps + a.measured
    total = a.total or steps
    opt_kw = {"fused": True} if a.fused else {}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, **opt_kw)
    fwd = torch.compile(model) if a.compile else model

    def lr_at(s):
        if s < a.warmup:
            return a.lr * (s + 1) / a.warmup
        if s >= total:
            return a.min_lr
        return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * (s - a.warmup) / max(total - a.warmup, 1)))

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    cursor, losses = 0, []
    window_times, window_start, in_window = [], None, 0
    first_measured = None
    for step in range(steps):
        if step == a.warmup_steps:
            sync()
            first_measured = time.perf_counter()
            window_start, in_window = first_measured, 0
        rows = [np.take(ids, np.arange(cursor + i * a.seq, cursor + i * a.seq + a.seq + 1), mode="wrap")
                for i in range(a.batch)]
        cursor += a.batch * a.seq
        w = torch.from_numpy(np.stack(rows).astype(np.int64))
        if dev.type == "cuda":
            w = w.pin_memory().to(dev, non_blocking=True)
        x, y = w[:, :-1], w[:, 1:]
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            logits = fwd(x)
            loss = F.cross_entropy(logits.reshape(-1, padded).float(), y.reshape(-1), ignore_index=-100)
        losses.append(loss.detach())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if window_start is not None:
            in_window += 1
            if in_window == a.window or step == steps - 1:
                sync()
                now = time.perf_counter()
                window_times.extend([(now - window_start) / in_window] * in_window)
                window_start, in_window = now, 0
    sync()
    secs = time.perf_counter() - first_measured
    losses = [float(v) for v in torch.stack(losses).cpu()]
    median = statistics.median_low(window_times)
    out = {"tokens_per_s": a.measured * a.batch * a.seq / secs, "seconds": secs, "steps": a.measured,
           "step_time_s": median, "step_tokens_per_s": a.batch * a.seq / median,
           "threads": torch.get_num_threads(), "first_loss": losses[0], "last_loss": losses[-1],
           "torch": torch.__version__, "device": a.device, "bf16": a.bf16, "fused": a.fused,
           "compile": a.compile, "model": a.model, "batch": a.batch, "seq": a.seq}
    if a.loss_every:
        out["window_losses"] = [sum(losses[i:i + a.loss_every]) / len(losses[i:i + a.loss_every])
                                for i in range(0, len(losses), a.loss_every)]
    if dev.type == "cuda":
        out["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(json.dumps(out))


if __name__ == "__main__":
    main()
