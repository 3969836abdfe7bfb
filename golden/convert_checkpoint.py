#!/usr/bin/env python3
"""convert_checkpoint.py: a pickled EVA-CLIP checkpoint -> safetensors, streamed tensor by tensor.

Owns: turning every pickled form of a published EVA-CLIP checkpoint into one `.safetensors` file
evabench loads:
  * an official EVA-CLIP `.pt` (QuanSun/EVA-CLIP, BAAI/EVA-CLIP-8B, -8B-448, -18B: official names)
    or an open_clip `open_clip_pytorch_model.bin` (timm trunk names): names kept;
  * the transformers-format shards of the BAAI repos (`pytorch_model-0000N-of-0000M.bin` with
    `pytorch_model.bin.index.json`, or `model-*.safetensors` with `model.safetensors.index.json`;
    pass the index JSON, the folder, or one shard): mapped back to the official names
    (ckpt_formats.hf_to_official documents each rule);
  * vision-only EVA pre-training weights (`EVA_8B_psz14.bin`, `EVA_18B_psz14.bin`, recognised by
    their content: vision tensors and no text tower) are refused, naming the file to use instead.

Memory: the zip-format pickle is unpickled with lazy storage references (no tensor data is read
while unpickling); the safetensors header is computed from the shapes and dtypes first, then each
tensor's bytes are copied from the checkpoint in 16 MB chunks. Peak memory is a chunk plus the
interpreter, not the model (golden/bench_convert_rss.py measures it). Only the legacy
(pre-1.6, non-zip) pickle format falls back to torch.load, which holds the whole file.

What it changes besides names, and nothing else (as the official loader does):
  * unwraps a state dict stored under "model", "module" or "state_dict" (nested wrappers too);
  * strips a leading "module." from every key; renames "text.logit_scale" -> "logit_scale";
  * moves the text tower of an old-format checkpoint (token_embedding, positional_embedding,
    transformer, ln_final, text_projection at top level) under "text.";
  * drops the RoPE buffers (`*rope.freqs_cos/sin`; evabench recomputes them), position_ids
    buffers of the transformers layout, and every entry that is not a tensor.
Dtypes are kept as stored (F32, F16, BF16); others are an error unless --dtype casts them. With
--variant NAME or --config C.json the resolved config JSON is stored in
`__metadata__["evabench.config"]` (without it, evabench finds the config from the tensor shapes).

Usage:
  python3 golden/convert_checkpoint.py IN OUT.safetensors [--variant NAME | --config C.json]
      [--dtype keep|f32|f16|bf16] [--list] [--unsafe-pickle]
Exit status: 0 ok, 2 bad input (unreadable file, no state dict, vision-only weights, unsupported
dtype, unmappable tensor name).
"""
import argparse
import json
import os
import re
import sys
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckpt_formats as cf  # noqa: E402

WRAPPERS = ("model", "module", "state_dict")
TEXT_TOP = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
DTYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16"}
SHARD = re.compile(r"^(.*)-(\d{5})-of-(\d{5})\.(bin|safetensors)$")


def die(msg):
    print(f"convert_checkpoint.py: {msg}", file=sys.stderr)
    sys.exit(2)


def is_tensor(v):
    return isinstance(v, cf.Src)


def unwrap(obj, path):
    seen = []
    while isinstance(obj, dict):
        if any(is_tensor(v) for v in obj.values()):
            return obj, seen
        for w in WRAPPERS:
            if w in obj and isinstance(obj[w], dict):
                seen.append(w)
                obj = obj[w]
                break
        else:
            break
    raise cf.FormatError(
        f"{path}: no state dict found (expected a dict of tensors, possibly under "
        f"{'/'.join(WRAPPERS)}; top-level keys: {list(obj)[:10] if isinstance(obj, dict) else type(obj).__name__})")


def load_legacy(path, unsafe):
    """Pre-1.6 (non-zip) torch pickles: torch.load, whole file in memory."""
    import numpy as np
    with open(path, "rb") as f:
        head = f.read(2)
    if len(head) < 2 or head[0] != 0x80:  # every torch.save pickle starts with the PROTO opcode
        raise cf.FormatError(f"{path}: neither a zip-format nor a legacy PyTorch checkpoint "
                             "(nor safetensors: pass .safetensors files to evabench directly)")
    try:
        import torch
    except ImportError:
        raise cf.FormatError(f"{path}: a legacy (pre-1.6, non-zip) PyTorch pickle; reading it needs torch "
                             "(golden/setup.sh), which this Python lacks") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not unsafe)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is bad input
        raise cf.FormatError(f"{path}: cannot load as a PyTorch checkpoint: {e}"
                             + ("" if unsafe or isinstance(e, OSError) else
                                " (if the file is trusted and holds non-tensor objects, retry with "
                                "--unsafe-pickle)")) from None

    class Mem(cf.Src):
        def __init__(self, t):
            names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                     torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8",
                     torch.bool: "BOOL", torch.int16: "I16", torch.int8: "I8"}
            self.t, self.dtype, self.shape = t.detach().contiguous(), names.get(t.dtype, str(t.dtype)), tuple(t.shape)

        def chunks(self):
            t = self.t.view(torch.int16) if self.t.dtype == torch.bfloat16 else self.t
            yield np.ascontiguousarray(t.numpy()).tobytes()

    def conv(o):
        if isinstance(o, torch.Tensor):
            return Mem(o)
        if isinstance(o, dict):
            return OrderedDict((k, conv(v)) for k, v in o.items())
        return o
    return conv(obj), ["legacy (non-zip) pickle: loaded whole with torch.load"]


def load_pickle(path, unsafe):
    """A .pt/.bin -> (flat OrderedDict name -> Src, notes)."""
    if cf.is_torch_zip(path):
        r = cf.TorchZipReader(path)
        obj, notes = r.obj, []
        if r.opaque:
            notes.append("ignored non-tensor objects of classes " + ", ".join(r.opaque[:5]))
    else:
        obj, notes = load_legacy(path, unsafe)
    sd, wrappers = unwrap(obj, path)
    if wrappers:
        notes.insert(0, "unwrapped " + "/".join(wrappers))
    return sd, notes


def load_index(path, unsafe):
    """A transformers index JSON -> (OrderedDict name -> Src over all shards, notes)."""
    try:
        with open(path) as f:
            wm = json.load(f)["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise cf.FormatError(f"{path}: not a transformers index JSON with a weight_map: {e}") from None
    folder = os.path.dirname(path)
    shards = OrderedDict()
    for k, shard in wm.items():
        shards.setdefault(shard, []).append(k)
    out = OrderedDict()
    for shard, keys in shards.items():
        sp = os.path.join(folder, shard)
        if not os.path.isfile(sp):
            raise cf.FormatError(f"{path}: shard {shard} (named by the index) is missing")
        if shard.endswith(".safetensors"):
            got, _ = cf.read_safetensors_header(sp)
        else:
            got, _ = load_pickle(sp, unsafe)
        for k in keys:
            if k not in got:
                raise cf.FormatError(f"{sp}: tensor {k} named by the index {os.path.basename(path)} is not in the shard")
            out[k] = got[k]
    return out, [f"read {len(shards)} shards named by {os.path.basename(path)}"]


def resolve_input(path):
    """Folder / shard -> the index JSON (or the one checkpoint file) to read."""
    if os.path.isdir(path):
        idx = sorted(f for f in os.listdir(path) if f.endswith(".index.json"))
        if not idx and os.path.isfile(os.path.join(path, "open_clip_model.safetensors")):
            return os.path.join(path, "open_clip_model.safetensors")
        if len(idx) == 1:
            return os.path.join(path, idx[0])
        if len(idx) > 1:
            raise cf.FormatError(f"{path}: several index JSON files ({', '.join(idx)}); pass one")
        raise cf.FormatError(f"{path}: a folder without a transformers *.index.json; pass the checkpoint file")
    m = SHARD.match(os.path.basename(path))
    if m:
        folder = os.path.dirname(path)
        stem = os.path.basename(m.group(1))
        for cand in (f"{stem}.{m.group(4)}.index.json", f"{stem}.index.json"):
            if os.path.isfile(os.path.join(folder, cand)):
                return os.path.join(folder, cand)
        raise cf.FormatError(f"{path}: one shard of {int(m.group(3))}; its index JSON "
                             f"({stem}.{m.group(4)}.index.json) is not beside it")
    return path


def normalise(sd, path):
    """Returns (OrderedDict name -> Src, notes): evabench names, non-tensors dropped."""
    notes, dropped, flat = [], [], OrderedDict()
    for k, v in sd.items():
        name = str(k)
        if name.startswith("module."):
            name = name[len("module."):]
        if not is_tensor(v):
            dropped.append(f"{name} (not a tensor)")
            continue
        if name in flat:
            raise cf.FormatError(f"{path}: duplicate tensor name after normalisation: {name}")
        flat[name] = v
    shapes = {k: tuple(v.shape) for k, v in flat.items()}
    msg = cf.vision_only_message(path, list(flat), shapes)
    if msg:
        raise cf.FormatError(msg)
    if cf.is_hf_layout(flat):
        out, n2 = cf.hf_to_official(flat, path)
        notes += n2
    else:
        out = OrderedDict()
        for name, v in flat.items():
            if name.endswith("rope.freqs_cos") or name.endswith("rope.freqs_sin"):
                dropped.append(f"{name} (rope buffer)")
                continue
            if name == "text.logit_scale":
                notes.append("renamed text.logit_scale -> logit_scale")
                name = "logit_scale"
            if name in out:
                raise cf.FormatError(f"{path}: duplicate tensor name after normalisation: {name}")
            out[name] = v
        if "text_projection" in out:  # old format: text tower at top level
            out = OrderedDict((("text." + k) if k.startswith(TEXT_TOP) else k, v) for k, v in out.items())
            notes.append("moved top-level text tower keys under text.")
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
        import make_golden  # the built-in variant table (needs the golden env: torch, open_clip)
        official = make_golden.resolve_variant(args.variant)
        return make_golden.config_json(make_golden.VARIANTS[official][1])
    return None


def read_any(path, unsafe):
    """Any accepted input -> (OrderedDict evabench name -> Src, notes)."""
    src = resolve_input(path)
    if src.endswith(".index.json"):
        sd, notes = load_index(src, unsafe)
    elif src.endswith(".safetensors"):
        sd, _ = cf.read_safetensors_header(src)
        notes = []
    else:
        sd, notes = load_pickle(src, unsafe)
    tensors, n2 = normalise(sd, src)
    for k, v in tensors.items():
        if isinstance(v, cf.LazyTensor):
            cf.check_in_bounds(k, v)
    return tensors, notes + n2


def main(argv=None):
    ap = argparse.ArgumentParser(description="Convert a pickled EVA-CLIP checkpoint (official .pt, open_clip "
                                             ".bin, transformers shards) to safetensors, streaming.")
    ap.add_argument("input", help="official .pt, open_clip_pytorch_model.bin, a transformers index JSON, "
                                  "its folder, or one of its shards")
    ap.add_argument("output", help="output .safetensors")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--variant", help="store this variant's config as evabench.config metadata")
    g.add_argument("--config", help="store this config JSON file as evabench.config metadata")
    ap.add_argument("--dtype", choices=["keep"] + list(DTYPES), default="keep",
                    help="keep the stored dtype (default) or cast every floating tensor")
    ap.add_argument("--list", action="store_true", help="print every tensor written")
    ap.add_argument("--unsafe-pickle", action="store_true",
                    help="legacy (non-zip) pickles only: full unpickling (runs code from the file; "
                         "trusted files only) instead of torch.load(weights_only=True)")
    args = ap.parse_args(argv)

    try:
        tensors, notes = read_any(args.input, args.unsafe_pickle)
        cast = None if args.dtype == "keep" else DTYPES[args.dtype]
        bad = [f"{k} ({v.dtype})" for k, v in tensors.items()
               if (cast is None and v.dtype not in cf.FLOAT_DTYPES)
               or (cast is not None and v.dtype not in cf.FLOAT_DTYPES + ("F64",))]
        if bad:
            raise cf.FormatError(f"{args.input}: tensors with a dtype evabench does not read (F32/F16/BF16 only; "
                                 f"F64 with --dtype f32): " + ", ".join(bad[:8]))
        if not tensors:
            raise cf.FormatError(f"{args.input}: no tensors left to write")
        cfg = load_config(args)
        meta = {"evabench.config": cfg} if cfg else None
        cf.write_safetensors(args.output, list(tensors.items()), meta, cast)
    except cf.FormatError as e:
        die(str(e))
    except OSError as e:
        die(f"{e.filename or args.input}: {e.strerror or e}")
    for n in notes:
        print(f"convert_checkpoint.py: {n}", file=sys.stderr)
    dts = sorted({(cast or v.dtype) for v in tensors.values()})
    if args.list:
        for k, v in tensors.items():
            print(f"{k}\t{cast or v.dtype}\t{list(v.shape)}")
    n = sum(v.numel for v in tensors.values())
    print(f"wrote {args.output}: {len(tensors)} tensors, {n:,} values, dtype {','.join(dts)}"
          + (", with evabench.config" if cfg else ""))


if __name__ == "__main__":
    main()
