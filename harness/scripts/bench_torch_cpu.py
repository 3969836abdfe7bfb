#!/usr/bin/env python3
"""bench_torch_cpu.py: the PyTorch side of harness/ratio_b16.sh.

Times open_clip's image tower (timm trunk) of a variant on the CPU in fp32, eager mode, random
weights, the way `evabench bench` times the reference: warm-up runs apart from timed runs, several
distinct input batches cycled, median and p90 (nearest rank) of the per-forward wall times.
Prints one JSON object on stdout.

Run with the golden environment (golden/setup.sh): golden/.venv/bin/python harness/bench_torch_cpu.py
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="EVA02-B-16", help="open_clip model name (default EVA02-B-16)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="torch intra-op threads (default: all CPUs, as the reference)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rotate", type=int, default=7, help="distinct input batches cycled (default 7)")
    a = ap.parse_args()
    if a.batch < 1 or a.iters < 1 or a.warmup < 0 or a.threads < 1 or a.rotate < 1:
        ap.error("--batch, --iters, --threads and --rotate must be >= 1, --warmup >= 0")

    import torch
    import open_clip
    import timm
    from open_clip import version as oc_version

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = open_clip.create_model(a.model, pretrained=None, device="cpu", precision="fp32")
    visual = model.visual.eval()
    size = visual.image_size if hasattr(visual, "image_size") else 224
    if isinstance(size, (tuple, list)):
        size = size[0]
    g = torch.Generator().manual_seed(a.seed + 1)
    inputs = [torch.rand(a.batch, 3, size, size, generator=g) * 4 - 2 for _ in range(a.rotate)]
    times = []
    with torch.inference_mode():
        for i in range(a.warmup):
            visual(inputs[i % a.rotate])
        for i in range(a.iters):
            x = inputs[(a.warmup + i) % a.rotate]
            t0 = time.perf_counter()
            out = visual(x)
            times.append((time.perf_counter() - t0) * 1e3)
            if not torch.isfinite(out).all():
                print("bench_torch_cpu: non-finite features", file=sys.stderr)
                return 1
    s = sorted(times)
    rec = {
        "impl": "pytorch-eager",
        "model": a.model,
        "tower": "image",
        "precision": "fp32",
        "batch": a.batch,
        "warmup": a.warmup,
        "iters": a.iters,
        "rotating_inputs": a.rotate,
        "median_ms": statistics.median(s),
        "p90_ms": s[max(0, math.ceil(0.9 * len(s)) - 1)],
        "min_ms": s[0],
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "open_clip": oc_version.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "weights": "random(seed=%d)" % a.seed,
    }
    print(json.dumps(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
