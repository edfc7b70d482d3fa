"""The trainer benchmark's other side: the same GPT-NeoX model, batch, data and optimizer as
`mtkit train`, written the usual way in PyTorch eager (nanoGPT style), for `make bench`.

    python reference_train.py TOKENS_DIR PRESET BATCH SEQ WARMUP_STEPS MEASURED_STEPS

Reads TOKENS_DIR/train.tokens (mtkit's token file: a 32-byte header, then ids), takes
consecutive windows as mtkit's sampler does for a one-source mixture, trains with
torch.optim.AdamW (decay on matrices only, as mtkit), global-norm clipping at 1.0 and
warmup + cosine learning rates, and prints {"tokens_per_s": ..., ...} over the measured steps.
"""

import json
import math
import os
import struct
import sys
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
        self.inv = 1.0 / (10000.0 ** (torch.arange(0, rd, 2, dtype=torch.float32) / rd))

    def forward(self, ids):
        t = ids.shape[1]
        freqs = torch.outer(torch.arange(t, dtype=torch.float32), self.inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        h = self.embed_in(ids)
        for blk in self.blocks:
            h = blk(h, cos, sin)
        return self.embed_out(self.ln_f(h))


def main():
    tokens_dir, preset = sys.argv[1], sys.argv[2]
    batch, seq, warmup_steps, measured = (int(a) for a in sys.argv[3:7])
    path = os.path.join(tokens_dir, "train.tokens")
    with open(path, "rb") as f:
        magic, _ver, width, vocab, _eos, n = struct.unpack("<8sIIIIQ", f.read(32))
    assert magic == b"MTKTOKS\0", path
    ids = np.memmap(path, dtype=np.uint16 if width == 2 else np.uint32, mode="r", offset=32, shape=(n,))
    layers, d, heads = PRESETS[preset]
    padded = (vocab + 127) // 128 * 128
    torch.manual_seed(1234)
    model = GPTNeoX(layers, d, heads, padded)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    lr, min_lr, warm, total = 3e-3, 3e-4, 6, warmup_steps + measured
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95), eps=1e-8)

    def lr_at(s):
        if s < warm:
            return lr * (s + 1) / warm
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * (s - warm) / max(total - warm, 1)))

    cursor, losses, start = 0, [], None
    for step in range(total):
        if step == warmup_steps:
            start = time.perf_counter()
        rows = [np.take(ids, np.arange(cursor + i * seq, cursor + i * seq + seq + 1), mode="wrap") for i in range(batch)]
        cursor += batch * seq
        w = torch.from_numpy(np.stack(rows).astype(np.int64))
        x, y = w[:, :-1], w[:, 1:]
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, padded).float(), y.reshape(-1), ignore_index=-100)
        losses.append(loss.item())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.step()
        opt.zero_grad(set_to_none=True)
    secs = time.perf_counter() - start
    print(json.dumps({"tokens_per_s": measured * batch * seq / secs, "seconds": secs, "steps": measured,
                      "threads": torch.get_num_threads(), "first_loss": losses[0], "last_loss": losses[-1],
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
