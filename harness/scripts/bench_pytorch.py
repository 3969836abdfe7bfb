#!/usr/bin/env python3
"""bench_pytorch.py: the PyTorch side of evabench's side-by-side GPU benchmark.

Builds EVA-CLIP towers with random weights (no network: pretrained=False) and times them on the
GPU in eager mode and under torch.compile, at the same precision and batch sizes as
`evabench bench --impl cuda`, writing one JSON record per (variant, tower, mode, batch).

Image towers: timm's own EVA models (eva02_base_patch16_clip_224, eva02_large_patch14_clip_224,
...), the modules open_clip wraps for these variants. Text towers: open_clip's TextTransformer
when open_clip is importable; otherwise a minimal module below with the same computation
(token + positional embedding, pre-norm blocks with fused in-projection, causal SDPA, exact GELU
MLP, ln_final, argmax-EOT pooling, projection), which is what the record's "text_impl" says.
Precision: the whole module cast to bf16/fp16 ("pure" 16-bit, as timm's benchmark does), or fp32
with TF32 off / tf32 on.

Timed region (--region pinned, the default: the same as `evabench bench --impl cuda`): the batch
starts in page-locked host memory as fp32 pixels (int32 ids), is copied to the device
asynchronously, cast, run, and the fp32 features are copied back into page-locked host memory;
CUDA events on the stream bracket all of it. --region device: inputs already on the device in the
run's dtype and features left there (PyTorch's usual measure). Warm-up first, median and p90 over
--iters, inputs rotated among 4 buffers; peak memory from torch.cuda.max_memory_allocated.
torch.compile: a fresh compile per batch size with static shapes (dynamic=False, dynamo reset
before each), so batch 256 never runs a graph compiled for batch 1. Each record names PyTorch's
attention backend ("sdpa_backend"), read from the kernel names of one profiled forward.
--ceiling: only the bf16 GEMM ceiling (torch.matmul 8192^3, median of 10 after 3 warm-ups).

Usage: bench_pytorch.py --variant EVA02-B-16 --tower image --batch 1,256 --precision bf16
                        [--modes eager,compile] [--iters 20] [--warmup 5] [--json OUT.json]
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# variant -> (timm image model, image size, text width, heads, layers, embed dim)
VARIANTS = {
    "EVA02-B-16": ("eva02_base_patch16_clip_224", 224, 512, 8, 12, 512),
    "EVA02-L-14": ("eva02_large_patch14_clip_224", 224, 768, 12, 12, 768),
    "EVA02-L-14-336": ("eva02_large_patch14_clip_336", 336, 768, 12, 12, 768),
    "EVA01-g-14": ("eva_giant_patch14_clip_224", 224, 768, 12, 12, 1024),
    "EVA02-E-14": ("eva02_enormous_patch14_clip_224", 224, 1024, 16, 24, 1024),
}
ALIASES = {"EVA02-CLIP-B-16": "EVA02-B-16", "EVA02-CLIP-L-14": "EVA02-L-14", "EVA02-CLIP-L-14-336": "EVA02-L-14-336",
           "EVA01-CLIP-g-14": "EVA01-g-14", "EVA02-CLIP-bigE-14": "EVA02-E-14"}


class TextBlock(nn.Module):
    def __init__(self, w, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(w, eps=1e-5)
        self.in_proj = nn.Linear(w, 3 * w)
        self.out_proj = nn.Linear(w, w)
        self.ln_2 = nn.LayerNorm(w, eps=1e-5)
        self.c_fc = nn.Linear(w, 4 * w)
        self.c_proj = nn.Linear(4 * w, w)

    def forward(self, x):
        B, L, W = x.shape
        q, k, v = self.in_proj(self.ln_1(x)).view(B, L, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, L, W)
        x = x + self.out_proj(o)
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))


class TextTower(nn.Module):
    """open_clip's TextTransformer computation (docs/model.md §5), minimal."""

    def __init__(self, width, heads, layers, embed_dim, vocab=49408, context=77):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.randn(context, width) * 0.01)
        self.blocks = nn.ModuleList([TextBlock(width, heads) for _ in range(layers)])
        self.ln_final = nn.LayerNorm(width, eps=1e-5)
        self.text_projection = nn.Parameter(torch.randn(width, embed_dim) / math.sqrt(width))

    def forward(self, ids):
        x = self.token_embedding(ids) + self.positional_embedding
        for blk in self.blocks:
            x = blk(x)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), ids.argmax(dim=-1)]
        return x @ self.text_projection


def build(variant, tower):
    import timm
    name, size, w, heads, layers, embed = VARIANTS[variant]
    if tower == "image":
        return timm.create_model(name, pretrained=False), size, "timm " + timm.__version__ + " " + name
    try:
        import open_clip  # noqa: F401
        model = open_clip.create_model(variant, pretrained=None)
        return model.text if hasattr(model, "text") else model, size, "open_clip " + open_clip.__version__
    except Exception:
        return TextTower(w, heads, layers, embed), size, "minimal TextTransformer (open_clip not installed)"


def make_inputs(tower, B, size, dev, dtype, region):
    """4 input batches: pinned fp32 pixels / int32 ids on the host, or device tensors (region device)."""
    out = []
    for _ in range(4):
        if tower == "image":
            x = torch.randn(B, 3, size, size)
        else:
            x = torch.randint(1, 49405, (B, 77), dtype=torch.int32)
            x[:, 0] = 49406
            x[torch.arange(B), torch.randint(5, 77, (B,))] = 49407
        if region == "pinned":
            out.append(x.pin_memory())
        else:
            out.append(x.to(dev, dtype if tower == "image" else torch.long))
    return out


def make_step(fn, tower, dev, dtype, region, B, embed):
    """The timed work for one input: upload + cast + forward + download (pinned), or the forward."""
    if region == "device":
        return fn
    host_out = torch.empty(B, embed, dtype=torch.float32).pin_memory()

    def step(x):
        xd = x.to(dev, non_blocking=True)
        xd = xd.to(dtype) if tower == "image" else xd.long()
        host_out.copy_(fn(xd).float(), non_blocking=True)
        return host_out
    return step


def time_model(step, inputs, warmup, iters):
    for i in range(warmup):
        step(inputs[i % len(inputs)])
    torch.cuda.synchronize()
    times = []
    for i in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        step(inputs[i % len(inputs)])
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(math.ceil(0.9 * len(times))) - 1)]


SDPA_KERNELS = [("flash", "flash"), ("fmha_cutlass", "mem_efficient"), ("efficient_attention", "mem_efficient"),
                ("cudnn", "cudnn"), ("sdpa", "cudnn")]


def sdpa_backend(step, x):
    """PyTorch's attention kernel in one forward, from the profiler's CUDA kernel names."""
    try:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step(x)
            torch.cuda.synchronize()
        names = [ev.key for ev in prof.key_averages()]
        for sub, backend in SDPA_KERNELS:
            for n in names:
                if sub in n.lower():
                    return f"{backend} ({n[:60]})"
        return "math (no fused attention kernel seen)"
    except Exception as e:  # the profiler is optional
        return f"unknown ({type(e).__name__})"


def gemm_ceiling(path):
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = []
    for _ in range(10):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        e.synchronize()
        t.append(s.elapsed_time(e))
    ms = statistics.median(t)
    rec = {"gemm": "bf16 8192^3 torch.matmul", "median_ms": ms, "tflops": 2 * 8192 ** 3 / (ms / 1e3) / 1e12,
           "device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    print(json.dumps(rec))
    if path:
        with open(path, "w") as f:
            json.dump(rec, f, indent=1)
    return 0


def run_one(model, a, variant, mode, B, size, impl, dev, dtype):
    """One (mode, batch) record."""
    embed = VARIANTS[variant][5]
    inputs = make_inputs(a.tower, B, size, dev, dtype, a.region)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    backend = None
    try:
        if mode == "compile":
            torch._dynamo.reset()
            fn = torch.compile(model, dynamic=False)
        else:
            fn = model
        step = make_step(fn, a.tower, dev, dtype, a.region, B, embed)
        with torch.inference_mode():
            med, p90 = time_model(step, inputs, a.warmup, a.iters)
            backend = sdpa_backend(step, inputs[0])
        err = None
    except Exception as e:  # record and go on (e.g. out of memory)
        med = p90 = None
        err = f"{type(e).__name__}: {e}"[:300]
    rec = {"variant": variant, "impl": f"pytorch-{mode}", "precision": a.precision, "tower": a.tower,
           "batch": B, "iters": a.iters, "warmup": a.warmup, "median_ms": med, "p90_ms": p90,
           "throughput": (B / (med / 1e3)) if med else None, "timed_region": a.region,
           "peak_device_bytes": torch.cuda.max_memory_allocated(), "sdpa_backend": backend,
           "compile": {"dynamic": False, "fresh_per_batch": True} if mode == "compile" else None,
           "model_impl": impl, "torch": torch.__version__, "device": torch.cuda.get_device_name(0),
           "wall_s": round(time.time() - t0, 1), "error": err}
    if a.gflops and med:
        rec["tflops"] = a.gflops * B / (med / 1e3) / 1e3
    print(f"{variant} {a.tower} {mode:8s} {a.precision} B={B:4d}: "
          + (f"median {med:.3f} ms, p90 {p90:.3f} ms, {rec['throughput']:.1f} items/s, attention {backend}"
             if med else err), flush=True)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant")
    ap.add_argument("--tower", choices=["image", "text"], default="image")
    ap.add_argument("--batch", default="1,256")
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16", "fp16"], default="bf16")
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--gflops", type=float, default=None, help="model GFLOPs per item (from evabench info)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--region", choices=["pinned", "device"], default="pinned")
    ap.add_argument("--ceiling", action="store_true", help="only the bf16 GEMM ceiling")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_pytorch: no CUDA device is available", file=sys.stderr)
        return 2
    if a.ceiling:
        return gemm_ceiling(a.json)
    variant = ALIASES.get(a.variant, a.variant)
    if variant not in VARIANTS:
        print(f"bench_pytorch: unknown variant {a.variant}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = a.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = a.precision == "tf32"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.precision, torch.float32)
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model, size, impl = build(variant, a.tower)
    model = model.to(dev, dtype).eval()
    records = [run_one(model, a, variant, mode, B, size, impl, dev, dtype)
               for mode in [m for m in a.modes.split(",") if m] for B in [int(b) for b in a.batch.split(",")]]
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
