#!/usr/bin/env python3
"""plot_reports.py: summary.md and the PNG charts from the JSON records of a reports folder
(build/reports after `make run`, or a kept folder under reports/).

Reads (all optional):
  bench.jsonl        evabench bench --jsonl records (schema evabench-bench/1); per (variant, impl,
                     precision, tower, batch) the latest record counts
  profile-*.json     evabench profile --json (schema evabench-profile/1)
  verify-*.json      evabench verify --json (schema evabench-verify/1)
  ratio_b16.json     harness/scripts/ratio_b16.sh --json (C reference vs PyTorch)
  zeroshot-*.json    evabench zeroshot --json (task zeroshot_classification; imagenet1k runs count)
  retrieval-*.json   evabench retrieval --json (task zeroshot_retrieval; mscoco_captions runs count)
Writes:
  summary.md         the model card's accuracy row of every variant beside ours (IN-1K zero-shot top-1,
                     MSCOCO text-to-image R@5, with the protocol, date and machine of our run, or "not
                     measured"); one section per machine (device + build; records of different machines are
                     never tabled under one header), in it one per variant shaped like a model card (params, precision, images/s,
                     texts/s, peak memory, verify status) + the verification table + the charts
  throughput.png     throughput against batch size (log-log), one line per variant/impl/precision/tower
  profile-<variant>.png  time per block and module (stacked), from the latest profile of each variant

Charts use matplotlib (Debian python3-matplotlib, harness/deps.sh). Without it the summary is still
written and says the charts were skipped.

usage: python3 harness/scripts/plot_reports.py --reports DIR
"""
import argparse
import glob
import json
import os
import sys

GIB = 1024.0 ** 3


def load_jsonl(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                print("plot_reports: %s line %d is not JSON (%s); skipped" % (path, n, e), file=sys.stderr)
    return out


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print("plot_reports: %s: %s; skipped" % (path, e), file=sys.stderr)
        return None


def latest_bench(records):
    """Latest record per (machine, variant, impl, precision, tower, batch), in file order."""
    last = {}
    for r in records:
        if r.get("schema") != "evabench-bench/1":
            continue
        key = machine_key(r) + (r["variant"], r["impl"], r["precision"], r["tower"], r["batch"])
        last[key] = r
    return last


def fmt_params(n):
    return "%.1f M" % (n / 1e6) if n is not None else "?"


def fmt_bytes(b):
    if b is None:
        return "n/a"
    return "%.2f GiB" % (b / GIB) if b >= GIB else "%.0f MiB" % (b / 1024.0 ** 2)


# The model card's two accuracy columns (EVA-CLIP README; MSCOCO R@5 of bigE+ from open_clip's
# docs/openclip_retrieval_results.csv, 74.92, where the README gives 75.0), in %.
CARD = [
    # official name, open_clip name, IN-1K zero-shot top-1, MSCOCO 5k text-to-image R@5
    ("EVA02-CLIP-B-16", "EVA02-B-16", 74.7, 66.9),
    ("EVA02-CLIP-L-14", "EVA02-L-14", 79.8, 71.2),
    ("EVA02-CLIP-L-14-336", "EVA02-L-14-336", 80.4, 71.7),
    ("EVA01-CLIP-g-14", "EVA01-g-14", 78.5, 68.5),
    ("EVA01-CLIP-g-14-plus", "EVA01-g-14-plus", 79.3, 74.0),
    ("EVA02-CLIP-bigE-14", "EVA02-E-14", 81.9, 74.7),
    ("EVA02-CLIP-bigE-14-plus", "EVA02-E-14-plus", 82.0, 74.9),
]


def card_variant(model):
    m = (model or "").lower()
    for off, oc, _, _ in CARD:
        if m in (off.lower(), oc.lower()):
            return off
    return None


def run_context(doc, path):
    """protocol text, date and machine of an evabench zeroshot/retrieval JSON."""
    p = doc.get("protocol", {})
    date = doc.get("date") or p.get("date")
    if not date:
        import datetime
        date = datetime.datetime.utcfromtimestamp(os.path.getmtime(path)).strftime("%Y-%m-%d") + " (file time)"
    machine = p.get("host") or p.get("device") or "?"
    proto = "%s %s" % (p.get("impl", "?"), p.get("precision", "?"))
    n = p.get("images_evaluated")
    if n is not None:
        proto += ", %s images" % n
    if p.get("captions_evaluated") is not None:
        proto += ", %s captions" % p["captions_evaluated"]
    if p.get("limit"):
        proto += ", --limit %s (subset: not comparable)" % p["limit"]
    if p.get("images_skipped"):
        proto += ", %s skipped" % p["images_skipped"]
    return "%s; %s; %s" % (proto, date, machine)


def accuracy_rows(rd):
    """Latest (by file time) imagenet1k zero-shot and mscoco_captions retrieval result per variant."""
    found = {}
    files = sorted(glob.glob(os.path.join(rd, "zeroshot-*.json")) + glob.glob(os.path.join(rd, "retrieval-*.json")),
                   key=os.path.getmtime)
    for f in files:
        d = load_json(f)
        if not isinstance(d, dict):
            continue
        var = card_variant(d.get("model"))
        m = d.get("metrics", {})
        if not var:
            continue
        if d.get("task") == "zeroshot_classification" and d.get("dataset") == "imagenet1k" and m.get("acc1") is not None:
            found.setdefault(var, {})["in1k"] = (100.0 * m["acc1"], run_context(d, f), os.path.basename(f))
        if d.get("task") == "zeroshot_retrieval" and d.get("dataset") == "mscoco_captions" and \
                m.get("image_retrieval_recall@5") is not None:
            found.setdefault(var, {})["coco"] = (100.0 * m["image_retrieval_recall@5"], run_context(d, f),
                                                 os.path.basename(f))
    return found


def accuracy_section(rd):
    found = accuracy_rows(rd)
    lines = ["## Accuracy: the model card beside ours", "",
             "IN-1K: zero-shot top-1 on the 50,000 ImageNet-1K val images (80 OpenAI templates); MSCOCO: "
             "text-to-image R@5 on the 5k karpathy test split (CLIP_benchmark's zeroshot_retrieval). Card: the "
             "EVA-CLIP README (fp16 autocast); ours: `evabench zeroshot --dataset imagenet1k --json "
             "reports/zeroshot-<variant>.json` and `evabench retrieval --dataset mscoco_captions --json "
             "reports/retrieval-<variant>.json`.", "",
             "| variant | IN-1K card | IN-1K ours | MSCOCO T2I R@5 card | MSCOCO T2I R@5 ours | our runs (protocol; "
             "date; machine) |", "|---|---:|---:|---:|---:|---|"]
    for off, _, in1k, coco in CARD:
        f = found.get(off, {})
        ours = []
        for key in ("in1k", "coco"):
            ours.append("%.2f" % f[key][0] if key in f else "not measured")
        ctx = "; ".join("%s: %s (`%s`)" % ("IN-1K" if k == "in1k" else "MSCOCO", f[k][1], f[k][2])
                        for k in ("in1k", "coco") if k in f) or "-"
        lines.append("| %s | %.1f | %s | %.1f | %s | %s |" % (off, in1k, ours[0], coco, ours[1], ctx))
    return lines + [""]


def plot_throughput(last, path, plt):
    """One panel per tower (images/s and texts/s are different units), one line per variant/impl/precision."""
    series = {}
    machines = sorted({machine_key(r) for r in last.values()})
    for r in last.values():
        where = " @%d" % machines.index(machine_key(r)) if len(machines) > 1 else ""
        series.setdefault(r["tower"], {}).setdefault((r["variant"], r["impl"], r["precision"] + where), []).append(
            (r["batch"], r["throughput"]))
    if not series:
        return False
    towers = [t for t in ("image", "text") if t in series]
    fig, axes = plt.subplots(1, len(towers), figsize=(6.2 * len(towers), 4.6), squeeze=False)
    for ax, tower in zip(axes[0], towers):
        for (variant, impl, prec), pts in sorted(series[tower].items()):
            pts.sort()
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            ax.plot(xs, ys, marker="o", label="%s (%s, %s)" % (variant, impl, prec))
            for x, y in zip(xs, ys):
                ax.annotate("%.3g" % y, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log", base=2)
        ys_all = [p[1] for pts in series[tower].values() for p in pts if p[1] > 0]
        if ys_all and max(ys_all) / min(ys_all) > 20:
            ax.set_yscale("log")  # variants of very different speed
        else:
            ax.set_ylim(bottom=0, top=max(ys_all or [1]) * 1.15)  # a flat line must look flat
        ax.set_xlabel("batch size")
        ax.set_ylabel("%s per second (at the median latency)" % ("images" if tower == "image" else "texts"))
        ax.set_title("%s tower" % tower, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    hosts = "; ".join("@%d %s" % (i, m[0][:60]) for i, m in enumerate(machines)) if len(machines) > 1 else machines[0][0]
    fig.suptitle("evabench bench: throughput against batch size (%s)" % hosts[:160], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_profile(prof, path, plt):
    towers = prof.get("profiles", [])
    if not towers:
        return False
    fig, axes = plt.subplots(len(towers), 1, figsize=(9, 3.6 * len(towers)), squeeze=False)
    colors = {"norm1": "#9ecae1", "ln_1": "#9ecae1", "attn": "#e6550d", "norm2": "#c6dbef", "ln_2": "#c6dbef",
              "mlp": "#31a354", "residual": "#bdbdbd"}
    for ax, q in zip(axes[:, 0], towers):
        blocks = sorted({t["block"] for t in q["taps"] if t["block"] is not None})
        order = ["norm1", "ln_1", "attn", "norm2", "ln_2", "mlp", "residual"]
        kinds = [k for k in order if any(t["kind"] == k for t in q["taps"])]
        labels = ["pre"] + ["%d" % b for b in blocks] + ["post"]
        bottoms = [0.0] * len(labels)
        # outside blocks: before the first block (patch/token embedding) and after (norm, head, tail)
        pre = sum(t["median_ms"] for t in q["taps"] if t["block"] is None and t["kind"] in
                  ("patch_embed", "pos_embed", "embedding"))
        post = sum(t["median_ms"] for t in q["taps"] if t["block"] is None and t["kind"] not in
                   ("patch_embed", "pos_embed", "embedding"))
        ax.bar([0], [pre], color="#756bb1", label="embedding")
        ax.bar([len(labels) - 1], [post], color="#636363", label="final norm, head, rest")
        for k in kinds:
            vals = [0.0] * len(labels)
            for t in q["taps"]:
                if t["kind"] == k and t["block"] is not None:
                    vals[1 + blocks.index(t["block"])] += t["median_ms"]
            ax.bar(range(len(labels)), vals, bottom=bottoms, color=colors.get(k, None), label=k)
            bottoms = [b + v for b, v in zip(bottoms, vals)]
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_xlabel("block")
        ax.set_ylabel("median ms")
        gf = q.get("gflops")
        ceil = prof.get("gemm_ceiling_gflops")
        extra = ""
        if gf and ceil:
            extra = ", %.1f GFLOP/s = %.0f%% of the %.0f GFLOP/s GEMM ceiling" % (gf, 100 * gf / ceil, ceil)
        ax.set_title("%s %s tower, batch %d (%s, %s): %.1f ms per forward%s" % (
            prof["variant"], q["tower"], q["batch"], prof["impl"], prof["precision"], q["median_ms"], extra),
            fontsize=9)
        ax.legend(fontsize=7, ncol=4, loc="upper right")
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def machine_key(r):
    """Records are only ever tabled together when they come from the same device and build."""
    b = r.get("build", {})
    return (r.get("device", "?"), b.get("version", "?"), b.get("git_rev", "?"), b.get("compiler", "?"),
            b.get("flags", "?"), b.get("gemm_kernel", "?"))


def machine_header(key, date):
    device, version, rev, compiler, flags, kernel = key
    return ["## Machine: %s" % device, "",
            "Build: evabench %s (%s), %s, `%s`, GEMM kernel %s; latest record %s.  " % (
                version, rev, compiler, flags, kernel, date or "?"),
            "Timings are medians of wall time per forward after warm-up, over rotating inputs.", ""]


def variant_section(var, recs, verify_by_config):
    """One model-card-shaped section of one variant's records (all from one machine)."""
    by_key = {(r["impl"], r["precision"], r["tower"], r["batch"]): r for r in recs}
    r0 = recs[0]
    text = next((r for r in recs if r["tower"] == "text"), None)
    image = next((r for r in recs if r["tower"] == "image"), None)
    lines = ["### %s" % var, "", "| | |", "|---|---|",
             "| Parameters (total / image / text) | %s / %s / %s |" % (
                 fmt_params(r0.get("params_total")), fmt_params(r0.get("params_image")),
                 fmt_params(r0.get("params_text"))),
             "| GFLOPs per image / per 77-token text | %s / %s |" % (
                 "%.2f" % image["gflops_per_item"] if image else "-", "%.2f" % text["gflops_per_item"] if text else "-"),
             "| Weights | %s |" % r0.get("weights", "?")]
    vs = verify_by_config.get(var)
    lines.append("| Verify | %s |" % (", ".join("%s: %s" % (os.path.basename(v.get("golden", "?")), v.get("result"))
                                                for v in vs) if vs else
                                     "no golden of this variant here (the tiny goldens are below)"))
    lines += ["", "| impl | precision | tower | batch | median ms | p90 ms | throughput | GFLOP/s | peak host memory | "
              "peak device memory |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for k in sorted(by_key):
        r = by_key[k]
        unit = "images/s" if r["tower"] == "image" else "texts/s"
        lines.append("| %s | %s | %s | %d | %.2f | %.2f | %.2f %s | %.1f | %s | %s |" % (
            r["impl"], r["precision"], r["tower"], r["batch"], r["median_ms"], r["p90_ms"], r["throughput"], unit,
            r["gflops"], fmt_bytes(r.get("peak_host_bytes")), fmt_bytes(r.get("peak_device_bytes"))))
    img1 = by_key.get(("ref", "fp32", "image", 1))
    if img1 and img1.get("rss_budget_bytes"):
        over = img1["peak_host_bytes"] - img1["baseline_host_bytes"]
        lines += ["", "Peak RSS of the image tower at batch 1 above the process baseline (%s): %s; budget "
                  "(weights %s + 1.5 x one batch's activations %s + extra rotating inputs): %s -> %s" % (
                      fmt_bytes(img1["baseline_host_bytes"]), fmt_bytes(over), fmt_bytes(img1["weight_bytes"]),
                      fmt_bytes(img1["activation_bytes"]), fmt_bytes(img1["rss_budget_bytes"]),
                      "within" if img1.get("rss_within_budget") else "OVER")]
    return lines + [""]


def bench_sections(last, verifies):
    """A section per machine (device + build), each with its variants: never one header over rows
    measured on different machines."""
    verify_by_config = {}
    for v in verifies:
        verify_by_config.setdefault(v.get("config"), []).append(v)
    machines = {}
    for r in last.values():
        machines.setdefault(machine_key(r), []).append(r)
    lines = []
    for key in sorted(machines):
        recs = machines[key]
        lines += machine_header(key, max((r.get("timestamp", "") for r in recs), default=""))
        for var in sorted({r["variant"] for r in recs}):
            lines += variant_section(var, [r for r in recs if r["variant"] == var], verify_by_config)
    if not machines:
        lines += ["No bench records (bench.jsonl) yet: run `bash harness/scripts/run_bench.sh`.", ""]
    return lines


def profile_sections(profiles):
    lines = []
    for p in profiles:
        lines += ["## Profile: %s (%s, %s) on %s" % (p["variant"], p["impl"], p["precision"], p.get("device", "?")), ""]
        ceil = p.get("gemm_ceiling_gflops")
        if ceil:
            lines.append("GEMM ceiling measured on that machine: %.1f GFLOP/s (%s)." % (ceil, p.get("gemm_ceiling_shape")))
        for q in p["profiles"]:
            lines += ["", "%s tower, batch %d: %.2f ms per forward, %.1f GFLOP/s%s" % (
                q["tower"], q["batch"], q["median_ms"], q.get("gflops") or 0,
                " (%.0f%% of the ceiling)" % (100 * q["ceiling_fraction"]) if q.get("ceiling_fraction") else ""), "",
                      "| module | count | ms | share | GFLOP/s | of ceiling |", "|---|---:|---:|---:|---:|---:|"]
            for m in q["modules"]:
                lines.append("| %s | %d | %.2f | %.1f%% | %s | %s |" % (
                    m["kind"], m["count"], m["ms"], 100 * m["share"],
                    "%.1f" % m["gflops"] if m.get("gflops") else "-",
                    "%.0f%%" % (100 * m["ceiling_fraction"]) if m.get("ceiling_fraction") else "-"))
        lines.append("")
    return lines


def ratio_section(ratio):
    if not ratio:
        return []
    return ["## Reference vs PyTorch (harness/scripts/ratio_b16.sh)", "",
            "EVA02-CLIP-B-16 image tower, batch 1, fp32, on %s: C reference %.1f ms, PyTorch %.1f ms (%s) -> "
            "ratio C/PyTorch **%.2f**." % (ratio.get("device", "?"), ratio["c_median_ms"], ratio["torch_median_ms"],
                                           ratio.get("torch_blas", "?"), ratio["ratio"]), ""]


def verify_section(verifies):
    if not verifies:
        return []
    lines = ["## Verification (tiny goldens)", "", "| golden | config | impl | precision | result | first failure |",
             "|---|---|---|---|---|---|"]
    for v in verifies:
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            os.path.basename(v.get("golden", "?")), v.get("config"), v.get("impl"), v.get("precision"),
            v.get("result"), v.get("first_failure") or "-"))
    return lines + [""]


def draw_charts(last, profiles, rd):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    charts = []
    if plot_throughput(last, os.path.join(rd, "throughput.png"), plt):
        charts.append(("Throughput against batch", "throughput.png"))
    for p in profiles:
        name = "profile-%s.png" % p["variant"]
        if plot_profile(p, os.path.join(rd, name), plt):
            charts.append(("Time per block and module: %s" % p["variant"], name))
    return charts


def chart_section(charts):
    if charts is None:
        return ["Charts skipped: matplotlib is not installed (apt install python3-matplotlib).", ""]
    lines = ["## Charts", ""] if charts else []
    for title, name in charts:
        lines += ["### %s" % title, "", "![%s](%s)" % (title, name), ""]
    return lines


def main():
    ap = argparse.ArgumentParser(description="summary.md and charts from the JSON records of a reports folder")
    ap.add_argument("--reports", required=True, help="folder with bench.jsonl, profile-*.json, verify-*.json")
    a = ap.parse_args()
    rd = os.path.abspath(a.reports)
    if not os.path.isdir(rd):
        print("plot_reports: %s is not a directory" % rd, file=sys.stderr)
        return 2
    last = latest_bench(load_jsonl(os.path.join(rd, "bench.jsonl")))
    profiles = [p for p in (load_json(f) for f in sorted(glob.glob(os.path.join(rd, "profile-*.json"))))
                if p and p.get("schema") == "evabench-profile/1"]
    verifies = [v for v in (load_json(f) for f in sorted(glob.glob(os.path.join(rd, "verify-*.json"))))
                if v and v.get("schema") == "evabench-verify/1"]
    ratio = load_json(os.path.join(rd, "ratio_b16.json")) if os.path.exists(os.path.join(rd, "ratio_b16.json")) else None
    charts = draw_charts(last, profiles, rd)
    lines = ["# evabench summary", ""] + accuracy_section(rd)
    lines += bench_sections(last, verifies) + profile_sections(profiles) + ratio_section(ratio)
    lines += verify_section(verifies) + chart_section(charts)
    with open(os.path.join(rd, "summary.md"), "w") as f:
        f.write("\n".join(lines))
    print("plot_reports: wrote %s%s" % (os.path.join(rd, "summary.md"),
                                         "".join(", " + os.path.join(rd, c[1]) for c in charts or [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
