#!/usr/bin/env python3
"""bench_convert_rss.py: peak memory of convert_checkpoint.py on a large pickled checkpoint.

Writes a bigE-like official-naming state dict of random fp16 tensors with torch.save (default
15 blocks of EVA02-CLIP-bigE-14's image tower plus its text tower's embeddings: about 2 GB, the
largest tensor a [15360,1792] MLP matrix of 55 MB), runs convert_checkpoint.py on it in a child
process, reads that child's peak resident set size from os.wait4, checks the output (every
tensor's bytes equal to the input's, compared chunk by chunk) and prints

    file GB, largest tensor MB, peak RSS MB, limit = 1.2 x largest + 300 MB, PASS/FAIL.

Exit status 0 when the peak is under the limit, 1 otherwise, 2 on bad usage.
Needs torch (to write the pickle) and numpy; takes about a minute and 2 x the file size of disk.
Usage: python3 golden/bench_convert_rss.py [--blocks N] [--dir DIR] [--keep]
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def make_checkpoint(path, blocks):
    import torch
    D, F, E, W, V = 1792, 15360, 1024, 1024, 49408
    g = torch.Generator().manual_seed(0)
    sd = {}

    def r(*shape):
        return torch.randn(*shape, generator=g).half()
    sd["visual.patch_embed.proj.weight"] = r(D, 3, 14, 14)
    sd["visual.cls_token"] = r(1, 1, D)
    sd["visual.pos_embed"] = r(1, 257, D)
    for i in range(blocks):
        p = f"visual.blocks.{i}."
        sd[p + "norm1.weight"] = r(D)
        sd[p + "attn.qkv.weight"] = r(3 * D, D)
        sd[p + "attn.q_bias"] = r(D)
        sd[p + "attn.v_bias"] = r(D)
        sd[p + "attn.proj.weight"] = r(D, D)
        sd[p + "mlp.fc1.weight"] = r(F, D)
        sd[p + "mlp.fc2.weight"] = r(D, F)
    sd["visual.head.weight"] = r(E, D)
    sd["text.token_embedding.weight"] = r(V, W)
    sd["text.text_projection"] = r(W, E)
    sd["logit_scale"] = torch.tensor(4.6)
    largest = max(t.numel() * t.element_size() for t in sd.values())
    torch.save(sd, path)
    return largest, len(sd)


def same_bytes(pt, st):
    """Every tensor of the safetensors output equals the pickle's (through the lazy reader)."""
    sys.path.insert(0, HERE)
    import ckpt_formats as cf
    src = cf.TorchZipReader(pt).obj
    out, _ = cf.read_safetensors_header(st)
    if list(out) != list(src):
        return False
    for k in src:
        h1, h2 = hashlib.sha256(), hashlib.sha256()
        for b in src[k].chunks():
            h1.update(b)
        for b in out[k].chunks():
            h2.update(b)
        if h1.digest() != h2.digest():
            return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=15, help="image blocks (15: about 2 GB)")
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    args = ap.parse_args()
    work = args.dir or tempfile.mkdtemp(prefix="evabench-rss.")
    os.makedirs(work, exist_ok=True)
    pt, st = os.path.join(work, "bige_like.pt"), os.path.join(work, "bige_like.safetensors")
    try:
        t0 = time.time()
        # in a child process, so this process stays small: a forked child's peak RSS counts the
        # parent's pages it started with, even across exec
        code = (f"import sys; sys.path.insert(0, {HERE!r}); import bench_convert_rss as b; "
                f"print(*b.make_checkpoint({pt!r}, {args.blocks}))")
        largest, n = map(int, subprocess.check_output([sys.executable, "-c", code]).split())
        size = os.path.getsize(pt)
        print(f"wrote {pt}: {size / 1e9:.2f} GB, {n} tensors, largest {largest / 1e6:.1f} MB "
              f"({time.time() - t0:.0f} s)", flush=True)
        t0 = time.time()
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "convert_checkpoint.py"), pt, st],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = proc.stdout.read().decode()
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        secs = time.time() - t0
        if proc.returncode != 0:
            print(out, end="")
            print(f"FAIL: convert_checkpoint.py exited {proc.returncode}")
            return 1
        peak = ru.ru_maxrss * 1024  # Linux: KiB
        limit = 1.2 * largest + 300e6
        ok_bytes = same_bytes(pt, st)
        print(out.strip())
        print(f"convert {size / 1e9:.2f} GB pickle -> safetensors in {secs:.1f} s: peak RSS "
              f"{peak / 1e6:.1f} MB; limit 1.2 x largest tensor ({largest / 1e6:.1f} MB) + 300 MB = "
              f"{limit / 1e6:.1f} MB; output bytes equal to input: {ok_bytes}")
        ok = peak < limit and ok_bytes
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        if not args.keep:
            for p in (pt, st):
                if os.path.exists(p):
                    os.remove(p)
            if not args.dir:
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
