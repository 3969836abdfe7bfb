#!/usr/bin/env python3
"""convert_checkpoint.py: a PyTorch EVA-CLIP checkpoint -> safetensors, names kept.

Owns: unpickling an official EVA-CLIP `.pt` (baaivision/EVA, official naming) or an open_clip
`open_clip_pytorch_model.bin` (timm trunk naming) and writing the same tensors, under the same
names and in the same dtype, to a `.safetensors` file evabench can load. It does not rename keys
between the two namings (evabench accepts both) and does not check the tensors against a config.

What it changes, and nothing else (docs/model.md §9, as the official loader does):
  * unwraps a state dict stored under "model", "module" or "state_dict" (nested wrappers too);
  * strips a leading "module." from every key (DataParallel/DeepSpeed saves);
  * renames "text.logit_scale" -> "logit_scale" (older EVA-01 CLIP packaging);
  * moves the text tower of an old-format checkpoint (text keys at top level, no "text." prefix:
    token_embedding, positional_embedding, transformer, ln_final, text_projection) under "text."
    (open_clip/official `convert_to_custom_text_state_dict`);
  * drops the official RoPE buffers (`*rope.freqs_cos`, `*rope.freqs_sin`; evabench recomputes
    them) and every entry that is not a tensor.
Dtypes are kept as stored (float32, float16, bfloat16); any other floating dtype is an error
unless --dtype casts it. With --variant NAME or --config C.json the resolved config JSON is
stored in `__metadata__["evabench.config"]`.

Usage:
  golden/.venv/bin/python golden/convert_checkpoint.py IN.pt OUT.safetensors [--variant NAME |
      --config C.json] [--dtype keep|f32|f16|bf16] [--list] [--unsafe-pickle]
Exit status: 0 ok, 2 bad input (unreadable file, no state dict, unsupported dtype, bad name).
"""
import argparse
import json
import os
import sys
from collections import OrderedDict

import torch

WRAPPERS = ("model", "module", "state_dict")
TEXT_TOP = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
ACCEPTED = (torch.float32, torch.float16, torch.bfloat16)


def die(msg):
    print(f"convert_checkpoint.py: {msg}", file=sys.stderr)
    sys.exit(2)


def unwrap(obj, path):
    seen = []
    while isinstance(obj, dict):
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj, seen
        for w in WRAPPERS:
            if w in obj and isinstance(obj[w], dict):
                seen.append(w)
                obj = obj[w]
                break
        else:
            break
    die(f"{path}: no state dict found (expected a dict of tensors, possibly under "
        f"{'/'.join(WRAPPERS)}; top-level keys: {list(obj)[:10] if isinstance(obj, dict) else type(obj).__name__})")


def normalise(sd):
    """Returns (OrderedDict name -> tensor, list of notes)."""
    notes = []
    out = OrderedDict()
    dropped = []
    for k, v in sd.items():
        name = str(k)
        if name.startswith("module."):
            name = name[len("module."):]
        if not isinstance(v, torch.Tensor):
            dropped.append(f"{name} (not a tensor: {type(v).__name__})")
            continue
        if name.endswith("rope.freqs_cos") or name.endswith("rope.freqs_sin"):
            dropped.append(f"{name} (rope buffer)")
            continue
        if name == "text.logit_scale":
            notes.append("renamed text.logit_scale -> logit_scale")
            name = "logit_scale"
        if name in out:
            die(f"duplicate tensor name after normalisation: {name}")
        out[name] = v
    if "text_projection" in out:  # old format: text tower at top level
        moved = OrderedDict()
        for k, v in out.items():
            if k.startswith(TEXT_TOP):
                moved["text." + k] = v
            else:
                moved[k] = v
        notes.append("moved top-level text tower keys under text.")
        out = moved
    if dropped:
        notes.append(f"dropped {len(dropped)} entries: " + ", ".join(dropped[:6])
                     + (" ..." if len(dropped) > 6 else ""))
    return out, notes


def load_config(args):
    if args.config:
        try:
            with open(args.config) as f:
                cfg = json.load(f, object_pairs_hook=OrderedDict)
        except (OSError, ValueError) as e:
            die(f"{args.config}: cannot read config JSON: {e}")
        return json.dumps(cfg, separators=(", ", ": "))
    if args.variant:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import make_golden  # the built-in variant table (docs/model.md §2.2)
        official = make_golden.resolve_variant(args.variant)
        return make_golden.config_json(make_golden.VARIANTS[official][1])
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description="Convert an EVA-CLIP .pt/.bin state dict to "
                                             "safetensors, keeping names and dtypes.")
    ap.add_argument("input", help="official EVA-CLIP .pt or open_clip_pytorch_model.bin")
    ap.add_argument("output", help="output .safetensors")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--variant", help="store this variant's config as evabench.config metadata")
    g.add_argument("--config", help="store this config JSON file as evabench.config metadata")
    ap.add_argument("--dtype", choices=["keep"] + list(DTYPES), default="keep",
                    help="keep the stored dtype (default) or cast every floating tensor")
    ap.add_argument("--list", action="store_true", help="print every tensor written")
    ap.add_argument("--unsafe-pickle", action="store_true",
                    help="full unpickling (runs code from the file; trusted files only) instead of "
                         "torch.load(weights_only=True)")
    args = ap.parse_args(argv)

    from safetensors.torch import save_file
    try:
        if args.unsafe_pickle:
            obj = torch.load(args.input, map_location="cpu")
        else:
            obj = torch.load(args.input, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is bad input
        die(f"{args.input}: cannot load as a PyTorch checkpoint: {e}"
            + ("" if args.unsafe_pickle or isinstance(e, OSError) else
               " (if the file is trusted and holds non-tensor objects, retry with --unsafe-pickle)"))
    sd, wrappers = unwrap(obj, args.input)
    tensors, notes = normalise(sd)
    if wrappers:
        notes.insert(0, "unwrapped " + "/".join(wrappers))
    meta = {}
    cfg = load_config(args)
    if cfg is not None:
        meta["evabench.config"] = cfg

    out = OrderedDict()
    bad = []
    for k, v in tensors.items():
        if args.dtype != "keep" and v.is_floating_point():
            v = v.to(DTYPES[args.dtype])
        if v.dtype not in ACCEPTED:
            bad.append(f"{k} ({v.dtype})")
            continue
        out[k] = v.detach().contiguous().clone()  # safetensors refuses shared storage
    if bad:
        die(f"{args.input}: tensors with a dtype evabench does not read (F32/F16/BF16 only; "
            f"use --dtype f32): " + ", ".join(bad))
    if not out:
        die(f"{args.input}: no tensors left to write")
    save_file(out, args.output, metadata=meta or None)
    dts = sorted({str(v.dtype).replace("torch.", "") for v in out.values()})
    for n in notes:
        print(f"convert_checkpoint.py: {n}", file=sys.stderr)
    if args.list:
        for k, v in out.items():
            print(f"{k}\t{str(v.dtype).replace('torch.', '')}\t{list(v.shape)}")
    n = sum(v.numel() for v in out.values())
    print(f"wrote {args.output}: {len(out)} tensors, {n:,} values, dtype {','.join(dts)}"
          + (", with evabench.config" if cfg else ""))


if __name__ == "__main__":
    main()
