#!/usr/bin/env python3
"""make_format_fixtures.py: the committed tiny models in every published checkpoint format.

Each fixture holds the *same values* as a committed tiny golden's weights (golden/tiny/), written
the way the published files are written, by the upstream writers:
  hub-eva02/, hub-bige/   open_clip's own `push_to_hf_hub.save_for_hf` (the code that made the
                          timm/eva* hub repos) on the upstream model after `.half()` / `.bfloat16()`:
                          open_clip_model.safetensors + open_clip_config.json (+ the pickled
                          open_clip_pytorch_model.bin it also writes);
  official/               `torch.save(state_dict)` in the official EVA-CLIP names, as the QuanSun
                          and BAAI `.pt` files: eva02 (F16), 8b (BF16), 18b (F16);
  vision-only/            EVA_8B_psz14.bin: the 8b image tower alone in the pre-training naming
                          (no `visual.` prefix, no text tower, no head), as the BAAI repos' EVA_*.bin;
  hf-8b-bin/              the transformers layout of the BAAI repos (names of their
                          `modeling_evaclip.py`), two pickled shards + pytorch_model.bin.index.json (F16);
  open_clip_configs/      open_clip_config.json of the seven timm/eva* hub repos (EVA01-g-14.json, ...),
                          by save_config_for_hf from open_clip's packaged model configs;
  hf-18b-st/              the same layout, two safetensors shards + model.safetensors.index.json (BF16),
                          written by safetensors.torch.save_file with {"format": "pt"} as transformers does.
The shard cut falls inside a layer: vision layer 0's q_proj is in the first shard, its k_proj and
v_proj in the second.

The transformers layout is produced here by a *forward* mapping (official -> transformers) written
from the modeling code's module tree (see to_hf below); the readers (golden/ckpt_formats.py and
ref/core/eva_checkpoint.c) implement the reverse independently, and tests/cli_ckpt_formats.sh checks
that every fixture gives the same embeddings as the golden/tiny weights.

Usage: golden/.venv/bin/python golden/make_format_fixtures.py [--out golden/formats]
"""
import argparse
import json
import os
import re
import shutil
import sys
from collections import OrderedDict

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden as mg  # noqa: E402
import importlib  # noqa: E402
oc_hub = importlib.import_module("open_clip.push_to_hf_hub")  # the module (the package re-exports a function of that name)

HERE = os.path.dirname(os.path.abspath(__file__))


def tiny_model(family):
    """The upstream model of a tiny family with the committed weights loaded."""
    cfg = mg.TINY[family]
    model = mg.build_custom(cfg)
    official = cfg["vision"]["norm"] == "rmsnorm"
    sd = load_file(os.path.join(HERE, "tiny", f"{family}.safetensors"))
    state = OrderedDict()
    for k in model.state_dict():
        state[k] = sd[mg.to_official(k, cfg) if official else k]
    model.load_state_dict(state, strict=True)
    return model.eval(), cfg


def official_state(family, dtype):
    model, cfg = tiny_model(family)
    return OrderedDict((mg.to_official(k, cfg), v.detach().to(dtype).clone())
                       for k, v in model.state_dict().items()), cfg


class _NoTokenizer:
    def save_pretrained(self, d):
        pass  # the hub repos ship the OpenAI tokenizer files; evabench has its own


def write_hub(out, family, dtype):
    model, cfg = tiny_model(family)
    model = model.to(dtype)
    # as open_clip.create_model sets them for the EVA configs (no pretrained mean/std: OpenAI's)
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    model.visual.image_mean, model.visual.image_std = OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    v, t = cfg["vision"], cfg["text"]
    # open_clip's model_cfg (as model_configs/EVA02-B-16.json), the timm trunk named by what
    # make_golden.build_custom builds (a tiny Eva; no timm registry name exists for it)
    model_cfg = OrderedDict([
        ("embed_dim", cfg["embed_dim"]),
        ("vision_cfg", OrderedDict([("image_size", v["image_size"]), ("timm_model_name", "evabench_custom_eva"),
                                    ("timm_model_pretrained", False), ("timm_pool", "token"), ("timm_proj", None)])),
        ("text_cfg", OrderedDict([("context_length", t["context_length"]), ("vocab_size", t["vocab_size"]),
                                  ("width", t["width"]), ("heads", t["heads"]), ("layers", t["layers"])])),
        ("custom_text", True)])
    oc_hub.save_for_hf(model, _NoTokenizer(), model_cfg, out, safe_serialization="both")


# ---- the transformers layout (forward mapping) ------------------------------------------------
# From the BAAI EVA-CLIP-8B/18B remote code (modeling_evaclip.py): EvaCLIPModel holds
# text_model (EvaCLIPTextTransformer), vision_model (EvaCLIPVisionTransformer),
# visual_projection = Linear(D, E), text_projection = Linear(W, E, bias=False), logit_scale.
# EvaCLIPVisionEmbeddings: class_embedding = Parameter([D]), patch_embedding = Conv2d,
# position_embedding = Embedding(N, D), position_ids buffer. EvaCLIPEncoderLayer: self_attn
# (q_proj, k_proj, v_proj, out_proj, inner_attn_ln), layer_norm1, mlp (fc1, fc2[, fc3, ffn_ln]),
# layer_norm2. The vision tower's final norm is post_layernorm; the text tower's final_layer_norm.

def to_hf(sd):
    out = OrderedDict()
    out["logit_scale"] = sd["logit_scale"]
    for k, v in sd.items():
        m = re.match(r"^text\.transformer\.resblocks\.(\d+)\.(.+)$", k)
        if m:
            p = f"text_model.encoder.layers.{m.group(1)}."
            r = m.group(2)
            if r == "attn.in_proj_weight" or r == "attn.in_proj_bias":
                leaf = "weight" if r.endswith("weight") else "bias"
                for name, part in zip("qkv", v.chunk(3, dim=0)):
                    out[p + f"self_attn.{name}_proj.{leaf}"] = part.clone()
                continue
            r = (r.replace("attn.out_proj.", "self_attn.out_proj.").replace("ln_1.", "layer_norm1.")
                 .replace("ln_2.", "layer_norm2.").replace("mlp.c_fc.", "mlp.fc1.").replace("mlp.c_proj.", "mlp.fc2."))
            out[p + r] = v
        elif k == "text.token_embedding.weight":
            out["text_model.embeddings.token_embedding.weight"] = v
        elif k == "text.positional_embedding":
            out["text_model.embeddings.position_embedding.weight"] = v
            out["text_model.embeddings.position_ids"] = torch.arange(v.shape[0]).unsqueeze(0)
        elif k.startswith("text.ln_final."):
            out["text_model.final_layer_norm." + k.split(".")[-1]] = v
    for k, v in sd.items():
        m = re.match(r"^visual\.blocks\.(\d+)\.(.+)$", k)
        if m:
            p = f"vision_model.encoder.layers.{m.group(1)}."
            r = m.group(2)
            if r == "attn.qkv.weight":
                for name, part in zip("qkv", v.chunk(3, dim=0)):
                    out[p + f"self_attn.{name}_proj.weight"] = part.clone()
                continue
            r = (r.replace("attn.proj.", "self_attn.out_proj.").replace("norm1.", "layer_norm1.")
                 .replace("norm2.", "layer_norm2."))
            out[p + r] = v
        elif k == "visual.cls_token":
            out["vision_model.embeddings.class_embedding"] = v.reshape(-1).clone()
        elif k == "visual.pos_embed":
            out["vision_model.embeddings.position_embedding.weight"] = v.reshape(v.shape[1], v.shape[2]).clone()
            out["vision_model.embeddings.position_ids"] = torch.arange(v.shape[1]).unsqueeze(0)
        elif k.startswith("visual.patch_embed.proj."):
            out["vision_model.embeddings.patch_embedding." + k.split(".")[-1]] = v
        elif k.startswith("visual.norm."):
            out["vision_model.post_layernorm." + k.split(".")[-1]] = v
        elif k.startswith("visual.head."):
            out["visual_projection." + k.split(".")[-1]] = v
    if "visual_projection.bias" not in out:
        # the remote code's visual_projection is Linear(D, E) with torch's default bias; filled from
        # the bias-free official 8B/18B head it can only be zero (the readers drop a zero bias)
        w = out["visual_projection.weight"]
        out["visual_projection.bias"] = torch.zeros(w.shape[0], dtype=w.dtype)
    out["text_projection.weight"] = sd["text.text_projection"].t().contiguous()
    return out


def shards(hf, cut="vision_model.encoder.layers.0.self_attn.q_proj.weight"):
    """Two shards, cut right after `cut`, so that layer's q_proj and k_proj/v_proj live in
    different files (transformers cuts by size, wherever the byte budget ends)."""
    total = sum(v.numel() * v.element_size() for v in hf.values())
    parts = [OrderedDict(), OrderedDict()]
    i = 0
    for k, v in hf.items():
        parts[i][k] = v
        if k == cut:
            i = 1
    return parts, total


def write_hf(out, family, dtype, kind):
    sd, cfg = official_state(family, dtype)
    hf = to_hf(sd)
    parts, total = shards(hf)
    os.makedirs(out, exist_ok=True)
    wm = OrderedDict()
    n = len(parts)
    for i, part in enumerate(parts, 1):
        if kind == "bin":
            fn = f"pytorch_model-{i:05d}-of-{n:05d}.bin"
            torch.save(part, os.path.join(out, fn))
        else:
            fn = f"model-{i:05d}-of-{n:05d}.safetensors"
            save_file(part, os.path.join(out, fn), metadata={"format": "pt"})
        for k in part:
            wm[k] = fn
    idx = "pytorch_model.bin.index.json" if kind == "bin" else "model.safetensors.index.json"
    with open(os.path.join(out, idx), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2)
        f.write("\n")


def write_open_clip_configs(out):
    """open_clip_config.json of each EVA-CLIP hub repo, written by open_clip's save_config_for_hf
    from its packaged model config (what the timm/eva* repos ship beside open_clip_model.safetensors;
    their model weights are not needed to make it)."""
    import pathlib
    from types import SimpleNamespace

    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    os.makedirs(out, exist_ok=True)
    fake = SimpleNamespace(visual=SimpleNamespace(image_mean=OPENAI_DATASET_MEAN, image_std=OPENAI_DATASET_STD))
    for name in ("EVA01-g-14", "EVA01-g-14-plus", "EVA02-B-16", "EVA02-L-14", "EVA02-L-14-336",
                 "EVA02-E-14", "EVA02-E-14-plus"):
        oc_hub.save_config_for_hf(fake, pathlib.Path(out) / f"{name}.json", open_clip.get_model_config(name))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, "formats"))
    a = ap.parse_args()
    torch.manual_seed(0)
    out = a.out
    for d in ("hub-eva02", "hub-bige", "official", "vision-only", "hf-8b-bin", "hf-18b-st", "open_clip_configs"):
        shutil.rmtree(os.path.join(out, d), ignore_errors=True)
    write_open_clip_configs(os.path.join(out, "open_clip_configs"))
    write_hub(os.path.join(out, "hub-eva02"), "eva02", torch.float16)
    write_hub(os.path.join(out, "hub-bige"), "bige", torch.bfloat16)
    os.makedirs(os.path.join(out, "official"), exist_ok=True)
    for fam, dt, fn in (("eva02", torch.float16, "EVA02_CLIP_tiny_psz8.pt"),
                        ("8b", torch.bfloat16, "EVA_CLIP_tiny8b_psz7.pt"),
                        ("18b", torch.float16, "EVA_CLIP_tiny18b_psz7.fp16.pt")):
        sd, _ = official_state(fam, dt)
        torch.save(sd, os.path.join(out, "official", fn))
    sd, _ = official_state("8b", torch.float16)
    vis = OrderedDict((k[len("visual."):], v) for k, v in sd.items()
                      if k.startswith("visual.") and not k.startswith("visual.head."))
    os.makedirs(os.path.join(out, "vision-only"), exist_ok=True)
    torch.save({"module": vis}, os.path.join(out, "vision-only", "EVA_8B_psz14.bin"))
    write_hf(os.path.join(out, "hf-8b-bin"), "8b", torch.float16, "bin")
    write_hf(os.path.join(out, "hf-18b-st"), "18b", torch.bfloat16, "safetensors")
    for root, _, files in sorted(os.walk(out)):
        for f in sorted(files):
            p = os.path.join(root, f)
            print(f"{os.path.relpath(p, out)}\t{os.path.getsize(p):,} bytes")


if __name__ == "__main__":
    main()
