#!/usr/bin/env python3
"""dump_taps.py: an implementation's activations in evabench's golden layout, by forward hooks.

This is the pattern to copy into a port's own harness (TensorRT, ONNX Runtime, a hand-written
kernel, ...): run the golden's /inputs through the model, catch the output of each module that is
a tap with a forward hook, and write it under /acts/<tap> of an HDF5 file. `evabench compare`
then names the first tap where the port leaves the golden's tolerance and shows the error
growing from there. Here the model is open_clip's EVA-CLIP (CustomTextCLIP with a timm Eva
trunk) built from the golden's config and loaded from a safetensors file, run in
--dtype; its module names are evabench's tap names.

Check a port in three commands:

  evabench encode --weights W.safetensors --image cat.jpg --text "a cat" --taps --out golden.h5
  golden/.venv/bin/python golden/examples/dump_taps.py --golden golden.h5 --weights W.safetensors \\
      --dtype bfloat16 --out mine.h5
  evabench compare --golden golden.h5 --candidate mine.h5 --precision bf16

The layout (any subset of taps; datasets float16, float32 or float64, batch first):
  /inputs/pixel_values, /inputs/input_ids   copied from the golden (compare checks they match)
  /acts/<tap>                               one dataset per tap
  attributes: schema, config, generator, impl, precision (and compute_dtype)
Dumps keyed by other module names are read with `evabench compare --names official|transformers`.
"""
import argparse
import json
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from make_golden import build_custom, tap_names, to_official  # noqa: E402  (open_clip + timm model from a config)

DTYPES = {"float32": (torch.float32, "fp32"), "float64": (torch.float64, "fp64"),
          "bfloat16": (torch.bfloat16, "bf16"), "float16": (torch.float16, "fp16")}


def load_model(cfg, weights, dtype):
    """open_clip EVA-CLIP for cfg with the weights of a safetensors file (open_clip or official names)."""
    from safetensors.torch import load_file
    model = build_custom(cfg)
    ours = {to_official(k, cfg): k for k in model.state_dict()}  # official name -> open_clip name
    state = {ours.get(k, k): v.to(torch.float32) for k, v in load_file(weights).items()}
    model.load_state_dict(state, strict=True)
    return model.eval().to(dtype)


def run_with_hooks(model, taps, pix, ids, dtype):
    """Runs both towers; returns {tap: float32 array} for every tap that fired, plus the outputs."""
    modules = dict(model.named_modules())
    seq_first = not getattr(model.text.transformer, "batch_first", False)
    acts, hooks = {}, []

    def hook(name):
        def fn(module, inputs, out):
            if isinstance(out, tuple):  # nn.MultiheadAttention returns (output, weights)
                out = out[0]
            if seq_first and name.startswith("text.transformer."):
                out = out.transpose(0, 1)  # (L, T, W) -> batch first (T, L, W)
            acts[name] = out.detach().to(torch.float32).numpy().copy()
        return fn

    for name in taps:
        if name in modules:
            hooks.append(modules[name].register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            if pix is not None:
                img = model.encode_image(torch.from_numpy(pix).to(dtype)).to(torch.float32)
                acts["image_features"] = img.numpy()
                acts["image_embeds"] = torch.nn.functional.normalize(img, dim=-1).numpy()
            if ids is not None:
                txt = model.encode_text(torch.from_numpy(ids).long()).to(torch.float32)
                acts["text_features"] = txt.numpy()
                acts["text_embeds"] = torch.nn.functional.normalize(txt, dim=-1).numpy()
            if pix is not None and ids is not None:
                scale = model.logit_scale.exp().to(torch.float32)
                acts["logits_per_image"] = (scale * torch.from_numpy(acts["image_embeds"])
                                            @ torch.from_numpy(acts["text_embeds"]).T).numpy()
    finally:
        for h in hooks:
            h.remove()
    return acts


def write_dump(path, golden, acts, store, generator, precision):
    with h5py.File(path, "w") as f:
        for key in ("schema", "config"):
            if key in golden.attrs:
                f.attrs[key] = golden.attrs[key]
        f.attrs["generator"] = generator
        f.attrs["impl"] = "open_clip (PyTorch forward hooks)"
        f.attrs["precision"] = precision
        if precision in ("fp32", "fp64"):  # read as a golden, it was computed in this dtype
            f.attrs["compute_dtype"] = "float32" if precision == "fp32" else "float64"
        for name in ("pixel_values", "input_ids"):
            if "inputs/" + name in golden:
                f["inputs/" + name] = golden["inputs/" + name][()]
        for name, a in acts.items():
            f.create_dataset("acts/" + name, data=a.astype(store))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--golden", required=True, help="golden HDF5: its /inputs and config attribute are used")
    ap.add_argument("--weights", required=True, help="safetensors of the golden's model (open_clip or official names)")
    ap.add_argument("--out", required=True, help="dump to write (HDF5, golden layout)")
    ap.add_argument("--dtype", choices=list(DTYPES), default="float32", help="compute dtype (default float32)")
    ap.add_argument("--store", choices=["float16", "float32", "float64"], default="float32",
                    help="dtype of the stored datasets (default float32)")
    ap.add_argument("--taps", default="all", help="comma list of taps to dump (default: all)")
    args = ap.parse_args(argv)

    golden = h5py.File(args.golden, "r")
    cfg = json.loads(golden.attrs["config"])
    pix = golden["inputs/pixel_values"][()] if "inputs/pixel_values" in golden else None
    ids = golden["inputs/input_ids"][()] if "inputs/input_ids" in golden else None
    dtype, precision = DTYPES[args.dtype]
    taps = tap_names(cfg) if args.taps == "all" else [t for t in args.taps.split(",") if t]

    torch.manual_seed(0)
    model = load_model(cfg, args.weights, dtype)
    acts = run_with_hooks(model, taps, pix, ids, dtype)
    if args.taps != "all":
        acts = {k: v for k, v in acts.items() if k in taps}
    import open_clip.version
    import timm
    generator = (f"golden/examples/dump_taps.py: torch {torch.__version__}, open_clip_torch "
                 f"{open_clip.version.__version__}, timm {timm.__version__}; {args.dtype} forward")
    write_dump(args.out, golden, acts, args.store, generator, precision)
    print(f"wrote {args.out}: {len(acts)} taps, {args.dtype} forward, stored as {args.store}")


if __name__ == "__main__":
    main()
