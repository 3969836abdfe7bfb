#!/usr/bin/env python3
"""gpu_summary.py RESULTS.jsonl: the tables at the end of a gpu-check summary (Markdown on stdout).

Reads the JSON lines gpu-check.sh appended (one per step, "data" holding the step's own JSON
output) and prints: the verify outcome per tiny family and precision; the GEMM ceilings; the
throughput of every bench record (evabench --impl cuda and PyTorch, bf16, same timed region:
pinned fp32 input uploaded, forward, fp32 features downloaded, CUDA events); the cuda-over-PyTorch
ratios per variant, tower and batch; PyTorch's attention backend. Missing steps are left out.
"""
import json
import sys


def load(path):
    steps = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    steps.append(json.loads(line))
                except ValueError:
                    pass
    return steps


def verify_table(steps):
    cells = {}
    for s in steps:
        if s["step"].startswith("verify_"):
            fam, prec = s["step"][7:].rsplit("_", 1)
            cells.setdefault(fam, {})[prec] = s["status"]
    if not cells:
        return []
    precs = ["fp32", "tf32", "bf16", "fp16"]
    out = ["", "## Tiny goldens, `verify --impl cuda`", "", "| family | " + " | ".join(precs) + " |",
           "|---|" + "---|" * len(precs)]
    for fam in sorted(cells):
        out.append(f"| {fam} | " + " | ".join(cells[fam].get(p, "-") for p in precs) + " |")
    return out


def bench_records(steps):
    recs = []
    for s in steps:
        if s["step"].startswith("bench_") and s.get("data"):
            d = s["data"]
            recs += [r for r in (d if isinstance(d, list) else [d]) if isinstance(r, dict)]
    return recs


def norm(v):
    return str(v).replace("-CLIP", "").replace("bigE", "E")


def fmt(x, f):
    return "" if x is None else format(x, f)


def bench_tables(recs):
    if not recs:
        return []
    out = ["", "## Throughput (bf16; ms per batch, median and p90; items/s)", "",
           "| variant | tower | impl | batch | median ms | p90 ms | items/s | peak device MiB | attention |",
           "|---|---|---|---|---|---|---|---|---|"]
    key = lambda r: (norm(r.get("variant")), str(r.get("tower")), int(r.get("batch") or 0), str(r.get("impl")))
    for r in sorted(recs, key=key):
        pk = r.get("peak_device_bytes")
        out.append(f"| {norm(r.get('variant'))} | {r.get('tower')} | {r.get('impl')} | {r.get('batch')} | "
                   f"{fmt(r.get('median_ms'), '.3f')} | {fmt(r.get('p90_ms'), '.3f')} | "
                   f"{fmt(r.get('throughput'), '.1f')} | {'' if pk in (None, -1) else f'{pk / 2**20:.0f}'} | "
                   f"{r.get('sdpa_backend') or r.get('attention') or ''} |")
    idx = {key(r): r for r in recs}
    out += ["", "| variant | tower | batch | cuda vs eager | cuda vs compile |", "|---|---|---|---|---|"]
    for (v, t, b, i), r in sorted(idx.items()):
        if i != "cuda" or not r.get("median_ms"):
            continue

        def ratio(mode):
            o = idx.get((v, t, b, mode))
            return f"{o['median_ms'] / r['median_ms']:.2f}x" if o and o.get("median_ms") else "n/a"
        out.append(f"| {v} | {t} | {b} | {ratio('pytorch-eager')} | {ratio('pytorch-compile')} |")
    return out


def ceilings(steps):
    out = []
    for s in steps:
        d = s.get("data")
        if s["step"] == "gemm_ceiling_torch" and isinstance(d, dict):
            out.append(f"- PyTorch bf16 GEMM ceiling ({d.get('gemm')}): {d.get('tflops', 0):.0f} TFLOP/s")
        if s["step"].startswith("profile_cuda") and isinstance(d, dict):
            c = d.get("gemm_ceiling_gflops")
            if c:
                out.append(f"- evabench GEMM ceiling ({d.get('gemm_ceiling_source')} {d.get('gemm_ceiling_shape')}): "
                           f"{c / 1e3:.0f} TFLOP/s")
            for prof in d.get("profiles") or []:
                if isinstance(prof, dict) and prof.get("ceiling_fraction") is not None:
                    out.append(f"- profile {prof.get('tower')} batch {prof.get('batch')}: whole forward at "
                               f"{100 * prof['ceiling_fraction']:.0f}% of that ceiling")
    return ["", "## GEMM ceilings", ""] + out if out else []


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    steps = load(sys.argv[1])
    bad = [s["step"] for s in steps if s["status"] in ("fail", "timeout")]
    skipped = [s["step"] for s in steps if s["status"] == "skipped"]
    lines = ["", f"Overall: **{'FAIL' if bad else 'PASS'}**" + (f" (failed: {', '.join(bad)})" if bad else "")]
    if skipped:
        lines.append(f"Skipped: {', '.join(skipped)}")
    lines += verify_table(steps) + ceilings(steps) + bench_tables(bench_records(steps))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
