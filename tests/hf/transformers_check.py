"""transformers' side of the Hugging Face interoperability tests (train/tests/hf_transformers.rs).

Run with the pinned environment of scripts/hf-venv.sh. Every command prints one JSON object on
its last line of stdout; tensors go to safetensors files, which the Rust tests read with tch.

  make-model DIR --layers L --rotary-pct P --vocab V --seed S [--pickle]
      A random GPTNeoXForCausalLM built and saved by transformers. Every parameter (LayerNorms
      and biases included) is drawn afresh, so a mix-up of any tensor shows in the logits.
  reference DIR --ids 1,2,3 --out FILE [--generate 10,20,30 --max-new-tokens 20]
            [--tokenize TEXT] [--device cpu]
      Loads DIR with AutoModelForCausalLM (failing on any missing, unexpected or mismatched
      weight, or any warning while loading), and writes to FILE the fp32 logits on the ids and
      the mean next-token loss (labels = ids); with --generate, greedy `generate` from those
      ids; with --tokenize, the ids of TEXT under the folder's tokenizer (AutoTokenizer).
"""

import argparse
import json
import logging
import sys
import warnings

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM


def make_model(a):
    cfg = GPTNeoXConfig(
        vocab_size=a.vocab,
        hidden_size=a.hidden,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        intermediate_size=a.intermediate,
        rotary_pct=a.rotary_pct,
        rotary_emb_base=a.rotary_base,
        max_position_embeddings=128,
        layer_norm_eps=a.layer_norm_eps,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=False,
    )
    torch.manual_seed(a.seed)
    model = GPTNeoXForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # LayerNorm gains near 1, everything else (biases too) around 0.
            norm_gain = ("layernorm" in name or "layer_norm" in name) and name.endswith("weight")
            centre = 1.0 if norm_gain else 0.0
            p.copy_(centre + 0.1 * torch.randn_like(p))
    if a.pickle:
        # As checkpoints from before safetensors (Pythia's intermediate revisions): a
        # torch.save pickle of the state dict, plus the config.
        import os

        os.makedirs(a.dir, exist_ok=True)
        cfg.save_pretrained(a.dir)
        torch.save(model.state_dict(), os.path.join(a.dir, "pytorch_model.bin"))
    else:
        model.save_pretrained(a.dir)
    print(json.dumps({"dir": a.dir, "parameters": sum(p.numel() for p in model.parameters())}))


def reference(a):
    transformers.logging.set_verbosity_warning()
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    transformers.logging.get_logger().addHandler(Keep())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, info = AutoModelForCausalLM.from_pretrained(
            a.dir, output_loading_info=True, dtype=torch.float32
        )
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"transformers reported on loading {a.dir}: {problems}")
    said = records + [str(w.message) for w in caught]
    if said:
        sys.exit(f"transformers warned while loading {a.dir}: {said}")
    if type(model).__name__ != "GPTNeoXForCausalLM":
        sys.exit(f"{a.dir} loaded as {type(model).__name__}")
    model = model.to(a.device).eval()
    ids = torch.tensor([[int(x) for x in a.ids.split(",")]], device=a.device)
    with torch.no_grad():
        out = model(ids, labels=ids)
    save_file(
        {"logits": out.logits[0].float().cpu().contiguous(), "loss": out.loss.float().cpu().reshape(1)},
        a.out,
    )
    result = {"loss": out.loss.item(), "class": type(model).__name__}
    if a.tokenize is not None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(a.dir)
        result["tokenized"] = tok(a.tokenize, add_special_tokens=False)["input_ids"]
    if a.generate:
        prompt = torch.tensor([[int(x) for x in a.generate.split(",")]], device=a.device)
        with torch.no_grad():
            gen = model.generate(
                prompt,
                max_new_tokens=a.max_new_tokens,
                do_sample=False,
                attention_mask=torch.ones_like(prompt),
                pad_token_id=model.config.eos_token_id,
            )
        result["generated"] = gen[0, prompt.shape[1]:].tolist()
    print(json.dumps(result))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-model")
    m.add_argument("dir")
    m.add_argument("--layers", type=int, required=True)
    m.add_argument("--rotary-pct", type=float, required=True)
    m.add_argument("--vocab", type=int, required=True)
    m.add_argument("--hidden", type=int, default=64)
    m.add_argument("--heads", type=int, default=4)
    m.add_argument("--intermediate", type=int, default=256)
    m.add_argument("--rotary-base", type=float, default=10000.0)
    m.add_argument("--layer-norm-eps", type=float, default=1e-5)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--pickle", action="store_true", help="save pytorch_model.bin, not safetensors")
    r = sub.add_parser("reference")
    r.add_argument("dir")
    r.add_argument("--ids", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--generate")
    r.add_argument("--max-new-tokens", type=int, default=20)
    r.add_argument("--device", default="cpu")
    r.add_argument("--tokenize", help="also load the folder's tokenizer and encode this text")
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    {"make-model": make_model, "reference": reference}[a.cmd](a)


if __name__ == "__main__":
    main()
