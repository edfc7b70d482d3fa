"""The summary of one scripts/gpu-repro.sh run, as Markdown on stdout, from its results folder:

    python repro_report.py RESULTS VERIFY_SECONDS LOG

RESULTS holds runs.csv, regression.csv (RI on PA over all rows: base, midtraining and CPT, and
per target), regression-midtrain.csv (midtraining rows alone, the paper's regression),
table.csv and runs/NAME/summary.json. Every number is read from those files (mtkit computed
them); this script only lays them out, with the card's name from LOG.
"""

import csv
import json
import os
import sys


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def fmt(x, digits=4):
    try:
        return f"{float(x):.{digits}f}"
    except (TypeError, ValueError):
        return "–"


def main():
    res, verify_s, log = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    card = "unknown device"
    for line in open(log):
        if "," in line and ("NVIDIA" in line or "H100" in line or "H200" in line):
            card = line.strip()
            break
        if line.startswith("(no nvidia-smi"):
            card = "CPU (no GPU)"
            break
    runs = rows(os.path.join(res, "runs.csv"))
    summaries = {}
    for name in sorted(os.listdir(os.path.join(res, "runs"))):
        with open(os.path.join(res, "runs", name, "summary.json")) as f:
            summaries[name] = json.load(f)
    rates = [p["tokens_per_s"] for s in summaries.values() for p in s.get("throughput", [])
             if p.get("tokens_per_s") and p["phase"] != "sft"]
    rates.sort()
    s0 = next(iter(summaries.values()))
    out = [f"# gpu-repro: {len(runs)} runs on {card}", "",
           f"- verify wall time {verify_s:.0f} s; model {s0['preset']} ({s0['params']:,} parameters), "
           f"precision {s0.get('precision', '?')}, attention {s0.get('attention', '?')}",
           f"- tokens per run (pretraining, midtraining, SFT): {s0['tokens']:,}",
           f"- median step rate of the pretraining and midtraining phases: "
           + (f"{rates[len(rates) // 2]:,.0f} tokens/s (range {rates[0]:,.0f}–{rates[-1]:,.0f})" if rates else "–"),
           ""]
    for title, name in (("RI on PA, every row (base, midtraining, CPT)", "regression.csv"),
                        ("RI on PA, midtraining rows only (the paper's regression)", "regression-midtrain.csv")):
        path = os.path.join(res, name)
        if not os.path.exists(path):
            continue
        out += [f"## {title}", "", "| group | n | slope | r | p | Spearman | r 95% CI |", "|---|---|---|---|---|---|---|"]
        for r in rows(path):
            out.append(f"| {r['group']} | {r['n']} | {fmt(r['slope'])} | {fmt(r['r'], 3)} | {float(r['p_value']):.3g} | "
                       f"{fmt(r['spearman'], 3)} | [{fmt(r['r_lo'], 3)}, {fmt(r['r_hi'], 3)}] |")
        out.append("")
    out += ["## Loss after SFT (the paper's table)", "",
            "| target | mix | kind | SFT loss | prose loss (forgetting) | RI | PA |", "|---|---|---|---|---|---|---|"]
    pa = {(r["target"], r["mix"], r["kind"]): r["pa"] for r in runs}
    for r in rows(os.path.join(res, "table.csv")):
        out.append(f"| {r['target']} | {r['mix']} | {r['kind']} | {fmt(r['target_loss'])} | {fmt(r['general_loss'])} | "
                   f"{100 * float(r['ri']):+.2f}% | {fmt(pa.get((r['target'], r['mix'], r['kind'])))} |")
    out += ["", "## Midtraining against CPT (same candidate, same start)", "",
            "| candidate | target | SFT loss mid / CPT | prose loss mid / CPT | mid better in-domain | mid forgets less |",
            "|---|---|---|---|---|---|"]
    by = {(r["target"], r["mix"], r["kind"]): r for r in rows(os.path.join(res, "table.csv"))}
    wins = [0, 0, 0]
    for (target, mix, kind), r in sorted(by.items()):
        if kind != "cpt" or (target, mix, "midtrain") not in by:
            continue
        m = by[(target, mix, "midtrain")]
        in_domain = float(m["target_loss"]) < float(r["target_loss"])
        forgets_less = float(m["general_loss"]) < float(r["general_loss"])
        wins[0] += in_domain
        wins[1] += forgets_less
        wins[2] += 1
        out.append(f"| {mix} | {target} | {fmt(m['target_loss'])} / {fmt(r['target_loss'])} | "
                   f"{fmt(m['general_loss'])} / {fmt(r['general_loss'])} | {'yes' if in_domain else 'no'} | "
                   f"{'yes' if forgets_less else 'no'} |")
    out += ["", f"Midtraining beats CPT in-domain in {wins[0]} of {wins[2]} (candidate, target) pairs and forgets "
            f"less in {wins[1]} of {wins[2]}."]
    print("\n".join(out))


if __name__ == "__main__":
    main()
