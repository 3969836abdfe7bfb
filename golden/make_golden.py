#!/usr/bin/env python3
"""make_golden.py: golden activations for evabench, computed by the upstream Python modules.

What it owns: building an EVA-CLIP model from *upstream module code* (open_clip 2.24's
CustomTextCLIP with a timm 1.0.3 `Eva` trunk and open_clip's TextTransformer), randomising every
parameter, running one float64 forward with a forward hook on every tap of docs/cli.md, and
writing
  * the weights (safetensors; open_clip state-dict names, or the official EVA-CLIP names of
    docs/model.md §9; `__metadata__["evabench.config"]` = the resolved config JSON), and
  * the golden (HDF5, schema "evabench-golden/1": /inputs/*, /acts/<tap>).
What it does not own: any re-implementation of the maths. The only model code here that is not
imported from open_clip/timm is `RMSNorm`, copied from the official EVA-CLIP-18B code (see there).

Two kinds of model:
  --variant NAME   a full-size open_clip model (`open_clip.create_model(NAME, pretrained=None)`),
                   EVA01-g-14 ... EVA02-E-14-plus (official names accepted too).
  --tiny FAMILY    a small model of one family (eva01, eva02, bige, 8b, 18b), built from timm's
                   `Eva` class with the kwargs that timm's EVA-CLIP model functions use, plugged
                   into open_clip's TimmModel/CustomTextCLIP. 8b/18b (no upstream pip package)
                   are timm Eva + official RMSNorm, qkv_bias=False, a bias-free head.

Every parameter value is rounded to a number that is exact in bfloat16 AND float16 (8 significant
bits, 2^-14 <= |w| <= 65280), so the F32, F16 and BF16 weight files of one model hold the same
values and share one golden. The forward runs in float64 (model.double()); timm's RoPE table is
computed by timm in float32 and then upcast, as upstream does.

Run `golden/.venv/bin/python golden/make_golden.py --help`; golden/README.md has the recipes.
"""
import argparse
import json
import math
import os
import sys
from collections import OrderedDict
from functools import partial

import numpy as np
import torch
import torch.nn as nn

import h5py
import open_clip
import open_clip.timm_model
import timm
from open_clip.version import __version__ as OPEN_CLIP_VERSION
from safetensors.torch import save_file
from timm.layers import LayerNorm as TimmLayerNorm
from timm.models.eva import Eva, EvaBlockPostNorm

SCHEMA = "evabench-golden/1"


# --------------------------------------------------------------------------------------------
# Official EVA-CLIP-18B RMSNorm (baaivision/EVA, EVA-CLIP-18B/shinji/eva_clip/model.py, docs/model.md §4.9).
# timm 1.0.3's RmsNorm is NOT usable: without apex its fallback `timm.layers.fast_norm.rms_norm`
# computes x * rsqrt(var(x) + eps) with torch.var, i.e. the *centred, unbiased* variance,
# not mean(x^2). The official class computes the statistic in float32 (upstream behaviour, kept).
class RMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        variance = hidden_states.to(torch.float32).pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        # convert into half-precision if necessary
        if self.weight.dtype in [torch.float16, torch.bfloat16]:
            hidden_states = hidden_states.to(self.weight.dtype)
        return self.weight * hidden_states


# --------------------------------------------------------------------------------------------
# Configs (docs/formats.md "Config JSON"), key order as in the contract.

def make_config(name, embed_dim, vision, text):
    vkeys = ["image_size", "patch_size", "width", "depth", "heads", "head_dim", "mlp_hidden", "mlp",
             "subln", "rope", "rope_ref_grid", "postnorm", "qkv", "qv_bias", "norm", "norm_eps",
             "head_bias"]
    tkeys = ["context_length", "vocab_size", "width", "heads", "layers", "mlp_hidden", "norm_eps"]
    assert set(vision) == set(vkeys), sorted(set(vision) ^ set(vkeys))
    assert set(text) == set(tkeys), sorted(set(text) ^ set(tkeys))
    return OrderedDict([("name", name), ("embed_dim", embed_dim),
                        ("vision", OrderedDict((k, vision[k]) for k in vkeys)),
                        ("text", OrderedDict((k, text[k]) for k in tkeys))])


def _vis(S, P, D, depth, heads, H, family):
    fam = dict(
        eva01=dict(mlp="gelu", subln=False, rope=False, postnorm=False, qkv="fused", qv_bias=True,
                   norm="layernorm", head_bias=True),
        eva02=dict(mlp="swiglu", subln=True, rope=True, postnorm=False, qkv="split", qv_bias=True,
                   norm="layernorm", head_bias=True),
        bige=dict(mlp="gelu", subln=False, rope=False, postnorm=True, qkv="fused", qv_bias=True,
                  norm="layernorm", head_bias=True),
        rms_pre=dict(mlp="gelu", subln=False, rope=False, postnorm=False, qkv="fused", qv_bias=False,
                     norm="rmsnorm", head_bias=False),
        rms_post=dict(mlp="gelu", subln=False, rope=False, postnorm=True, qkv="fused", qv_bias=False,
                      norm="rmsnorm", head_bias=False),
    )[family]
    return dict(image_size=S, patch_size=P, width=D, depth=depth, heads=heads, head_dim=D // heads,
                mlp_hidden=H, rope_ref_grid=16, norm_eps=1e-6, **fam)


def _txt(W, heads, layers, vocab=49408, ctx=77):
    return dict(context_length=ctx, vocab_size=vocab, width=W, heads=heads, layers=layers,
                mlp_hidden=4 * W, norm_eps=1e-5)


# Built-in variants (docs/model.md §2.2), official name -> (open_clip name or None, config).
VARIANTS = OrderedDict([
    ("EVA01-CLIP-g-14", ("EVA01-g-14", make_config(
        "EVA01-CLIP-g-14", 1024, _vis(224, 14, 1408, 40, 16, 6144, "eva01"), _txt(768, 12, 12)))),
    ("EVA01-CLIP-g-14-plus", ("EVA01-g-14-plus", make_config(
        "EVA01-CLIP-g-14-plus", 1024, _vis(224, 14, 1408, 40, 16, 6144, "eva01"), _txt(1024, 16, 24)))),
    ("EVA02-CLIP-B-16", ("EVA02-B-16", make_config(
        "EVA02-CLIP-B-16", 512, _vis(224, 16, 768, 12, 12, 2048, "eva02"), _txt(512, 8, 12)))),
    ("EVA02-CLIP-L-14", ("EVA02-L-14", make_config(
        "EVA02-CLIP-L-14", 768, _vis(224, 14, 1024, 24, 16, 2730, "eva02"), _txt(768, 12, 12)))),
    ("EVA02-CLIP-L-14-336", ("EVA02-L-14-336", make_config(
        "EVA02-CLIP-L-14-336", 768, _vis(336, 14, 1024, 24, 16, 2730, "eva02"), _txt(768, 12, 12)))),
    ("EVA02-CLIP-bigE-14", ("EVA02-E-14", make_config(
        "EVA02-CLIP-bigE-14", 1024, _vis(224, 14, 1792, 64, 16, 15360, "bige"), _txt(1024, 16, 24)))),
    ("EVA02-CLIP-bigE-14-plus", ("EVA02-E-14-plus", make_config(
        "EVA02-CLIP-bigE-14-plus", 1024, _vis(224, 14, 1792, 64, 16, 15360, "bige"), _txt(1280, 20, 32)))),
    ("EVA-CLIP-8B", (None, make_config(
        "EVA-CLIP-8B", 1280, _vis(224, 14, 4096, 32, 32, 20480, "rms_pre"), _txt(1280, 20, 32)))),
    ("EVA-CLIP-8B-plus", (None, make_config(
        "EVA-CLIP-8B-plus", 1280, _vis(448, 14, 4096, 32, 32, 20480, "rms_pre"), _txt(1280, 20, 32)))),
    ("EVA-CLIP-18B", (None, make_config(
        "EVA-CLIP-18B", 1536, _vis(224, 14, 5120, 48, 40, 25600, "rms_post"), _txt(1280, 20, 32)))),
])
ALIASES = {"EVA-CLIP-8B-448": "EVA-CLIP-8B-plus"}
for _off, (_oc, _cfg) in VARIANTS.items():
    if _oc:
        ALIASES[_oc] = _off

# Tiny test models, one per family. Vision sizes are chosen to exercise awkward shapes:
# non-multiple-of-8 widths/hidden sizes, head_dim 12/16/24, grids 4 and 5 (RoPE grid 5 scaled to
# the reference grid 16), 2-3 layers. Text: vocab 1000 (SOT 998, EOT 999), context 77.
TINY_TEXT = _txt(32, 2, 2, vocab=1000, ctx=77)
TINY = OrderedDict([
    ("eva01", make_config("tiny-eva01", 32, _vis(28, 7, 48, 2, 4, 100, "eva01"), TINY_TEXT)),
    ("eva02", make_config("tiny-eva02", 32, _vis(40, 8, 96, 2, 4, 130, "eva02"), TINY_TEXT)),
    ("bige", make_config("tiny-bige", 32, _vis(28, 7, 48, 3, 3, 100, "bige"), TINY_TEXT)),
    ("8b", make_config("tiny-8b", 32, _vis(28, 7, 64, 2, 4, 160, "rms_pre"), TINY_TEXT)),
    ("18b", make_config("tiny-18b", 32, _vis(28, 7, 64, 3, 4, 160, "rms_post"), TINY_TEXT)),
    # EVA-02 with open_clip's real vocabulary (49408) and a narrow text tower, for goldens of real
    # captions tokenized by open_clip (make_golden.py --weights ... --text ...)
    ("eva02-vocab", make_config("tiny-eva02-vocab", 32, _vis(40, 8, 96, 2, 4, 130, "eva02"),
                                _txt(8, 2, 2))),
])


def resolve_variant(name):
    low = {k.lower(): k for k in VARIANTS}
    low.update({k.lower(): v for k, v in ALIASES.items()})
    if name.lower() not in low:
        raise SystemExit(f"make_golden.py: unknown variant '{name}'; known: "
                         + ", ".join(list(VARIANTS) + sorted(ALIASES)))
    return low[name.lower()]


def config_json(cfg):
    return json.dumps(cfg, separators=(", ", ": "))


# --------------------------------------------------------------------------------------------
# Model construction (upstream modules only).

def eva_kwargs(cfg):
    """timm Eva kwargs for a config, the way timm's eva*_clip_* model functions set them."""
    v = cfg["vision"]
    assert v["width"] == v["heads"] * v["head_dim"], "timm Eva needs head_dim = width / heads"
    if v["norm"] == "layernorm":
        norm_layer = partial(TimmLayerNorm, eps=v["norm_eps"])
    else:
        norm_layer = partial(RMSNorm, eps=v["norm_eps"])
    return dict(
        img_size=v["image_size"], patch_size=v["patch_size"], embed_dim=v["width"], depth=v["depth"],
        num_heads=v["heads"], qkv_bias=v["qv_bias"], qkv_fused=(v["qkv"] == "fused"),
        # int(D * ratio) must give mlp_hidden exactly (timm truncates); checked after building.
        mlp_ratio=v["mlp_hidden"] / v["width"],
        swiglu_mlp=(v["mlp"] == "swiglu"), scale_mlp=v["subln"], scale_attn_inner=v["subln"],
        use_rot_pos_emb=v["rope"], ref_feat_shape=(v["rope_ref_grid"],) * 2 if v["rope"] else None,
        use_post_norm=v["postnorm"], norm_layer=norm_layer,
    )


def build_custom(cfg):
    """open_clip CustomTextCLIP whose TimmModel trunk is a timm Eva built from cfg."""
    v, t = cfg["vision"], cfg["text"]
    kw = eva_kwargs(cfg)
    real_create = open_clip.timm_model.timm.create_model

    def create_model(model_name, num_classes, global_pool, pretrained, **extra):
        # Called by open_clip.timm_model.TimmModel exactly as for the EVA configs
        # (timm_pool='token', timm_proj=None -> num_classes=embed_dim, global_pool='token').
        assert model_name == "evabench_custom_eva" and not pretrained and not extra
        return Eva(num_classes=num_classes, global_pool=global_pool, **kw)

    open_clip.timm_model.timm.create_model = create_model
    try:
        text_cfg = dict(context_length=t["context_length"], vocab_size=t["vocab_size"],
                        width=t["width"], heads=t["heads"], layers=t["layers"],
                        mlp_ratio=t["mlp_hidden"] / t["width"])
        if t["norm_eps"] != 1e-5:
            text_cfg["norm_kwargs"] = {"eps": t["norm_eps"]}
        model = open_clip.model.CustomTextCLIP(
            embed_dim=cfg["embed_dim"],
            vision_cfg=dict(image_size=v["image_size"], timm_model_name="evabench_custom_eva",
                            timm_model_pretrained=False, timm_pool="token", timm_proj=None),
            text_cfg=text_cfg)
    finally:
        open_clip.timm_model.timm.create_model = real_create
    if not v["head_bias"]:
        # OFF18 builds the head with bias=qkv_bias (False for 8B/18B).
        model.visual.trunk.head = nn.Linear(v["width"], cfg["embed_dim"], bias=False)
    return model


def build_variant(official):
    oc_name, cfg = VARIANTS[official]
    if oc_name is None:
        raise SystemExit(f"make_golden.py: {official} has no open_clip/timm model; "
                         "full-size 8B/18B goldens are not supported (use --tiny 8b / --tiny 18b)")
    return open_clip.create_model(oc_name, pretrained=None), cfg


def introspect_config(model, name):
    """Reads the config back from the built upstream model (guards the kwargs mapping)."""
    tr = model.visual.trunk
    blk = tr.blocks[0]
    a = blk.attn
    swiglu = hasattr(blk.mlp, "fc1_g")
    hidden = blk.mlp.fc1_g.out_features if swiglu else blk.mlp.fc1.out_features
    norm_is_rms = isinstance(tr.norm, RMSNorm)
    eps = tr.norm.variance_epsilon if norm_is_rms else tr.norm.eps
    P = tr.patch_embed.proj.kernel_size[0]
    D = tr.embed_dim
    heads = a.num_heads
    qv_bias = (a.q_bias is not None) if a.qkv is not None else (a.q_proj.bias is not None)
    vision = dict(
        image_size=tr.patch_embed.img_size[0], patch_size=P, width=D, depth=len(tr.blocks),
        heads=heads, head_dim=D // heads, mlp_hidden=hidden, mlp="swiglu" if swiglu else "gelu",
        subln=not isinstance(a.norm, nn.Identity), rope=tr.rope is not None,
        rope_ref_grid=(tr.rope.ref_feat_shape[0] if tr.rope is not None else 16),
        postnorm=isinstance(blk, EvaBlockPostNorm), qkv="fused" if a.qkv is not None else "split",
        qv_bias=qv_bias, norm="rmsnorm" if norm_is_rms else "layernorm", norm_eps=eps,
        head_bias=tr.head.bias is not None)
    if swiglu:
        assert not isinstance(blk.mlp.norm, nn.Identity) == vision["subln"]
    te = model.text
    rb = te.transformer.resblocks[0]
    text = dict(context_length=te.context_length, vocab_size=te.vocab_size, width=te.width,
                heads=te.heads, layers=len(te.transformer.resblocks),
                mlp_hidden=rb.mlp.c_fc.out_features, norm_eps=te.ln_final.eps)
    return make_config(name, te.output_dim, vision, text)


# --------------------------------------------------------------------------------------------
# Randomisation, rounded to values exact in both bf16 and fp16.

F16_MIN_NORMAL = 2.0 ** -14
BF16_F16_MAX = 65280.0  # largest bf16 value (8 significant bits) below fp16's 65504


def round_bf16_f16(x):
    """float64 array -> float64 array of values exactly representable in bf16 and fp16."""
    x32 = np.asarray(x, dtype=np.float64).astype(np.float32)
    b = np.atleast_1d(x32).view(np.uint32).astype(np.uint64)
    lsb = (b >> np.uint64(16)) & np.uint64(1)
    b = ((b + np.uint64(0x7FFF) + lsb) & np.uint64(0xFFFF0000)).astype(np.uint32)  # nearest-even
    y = b.view(np.float32).astype(np.float64).reshape(x32.shape)
    mag = np.abs(y)
    sign = np.where(y < 0, -1.0, 1.0)
    y = np.where(mag < F16_MIN_NORMAL, sign * F16_MIN_NORMAL, y)
    y = np.where(mag > BF16_F16_MAX, sign * BF16_F16_MAX, y)
    return y


def norm_module_names(model):
    return {n for n, m in model.named_modules() if isinstance(m, (nn.LayerNorm, RMSNorm))}


def randomize(model, rng):
    """Every parameter gets a random value (norm weights 1+0.2N, biases 0.2N, matrices
    N/sqrt(fan_in), embeddings O(1), logit_scale ln 50 + 0.1N), rounded by round_bf16_f16."""
    norms = norm_module_names(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = tuple(p.shape)
            z = rng.standard_normal(shape)
            mod, _, leaf = name.rpartition(".")
            if name == "logit_scale":
                val = math.log(50.0) + 0.1 * z
            elif mod in norms and leaf == "weight":
                val = 1.0 + 0.2 * z
            elif mod in norms and leaf == "bias":
                val = 0.2 * z
            elif name.endswith("token_embedding.weight"):
                val = z
            elif name.endswith("positional_embedding") or name.endswith("pos_embed"):
                val = 0.5 * z
            elif name.endswith("cls_token"):
                val = z
            elif name.endswith("text_projection"):  # [W, E], used as x @ P
                val = z / math.sqrt(shape[0])
            elif len(shape) >= 2:  # Linear [out, in], in_proj_weight [3W, W], conv [D, 3, P, P]
                val = z / math.sqrt(float(np.prod(shape[1:])))
            else:  # linear biases, q_bias, v_bias, in_proj_bias
                val = 0.2 * z
            val = round_bf16_f16(val)
            if mod in norms and leaf == "weight":
                val = np.where(val == 1.0, 1.0 + 2.0 ** -7, val)  # never exactly 1
            p.copy_(torch.from_numpy(val).to(p.dtype))


def make_inputs(cfg, n_images, n_texts, rng):
    v, t = cfg["vision"], cfg["text"]
    S = v["image_size"]
    pix = rng.standard_normal((n_images, 3, S, S)).astype(np.float32)
    V, L = t["vocab_size"], t["context_length"]
    sot, eot = V - 2, V - 1
    ids = np.zeros((n_texts, L), dtype=np.int64)
    for i in range(n_texts):
        if i == n_texts - 1:
            n = L - 2  # fills the context exactly: SOT + L-2 ids + EOT at position L-1
        else:
            n = int(rng.integers(1, min(L - 2, 8 + 12 * i) + 1))
        row = [sot] + [int(x) for x in rng.integers(1, V - 2, size=n)] + [eot]
        ids[i, :len(row)] = row
    if n_texts > 1 and L >= 3:
        # the full text: simulate tokenizer truncation (content longer than the context)
        assert ids[-1, L - 1] == eot
    return pix, ids


# --------------------------------------------------------------------------------------------
# Taps.

def tap_names(cfg):
    v, t = cfg["vision"], cfg["text"]
    names = ["visual.trunk.patch_embed", "visual.trunk.pos_drop"]
    for i in range(v["depth"]):
        b = f"visual.trunk.blocks.{i}"
        names += [b + ".norm1", b + ".attn", b + ".norm2", b + ".mlp", b]
    names += ["visual.trunk.norm", "visual.trunk.head", "text.token_embedding"]
    for i in range(t["layers"]):
        b = f"text.transformer.resblocks.{i}"
        names += [b + ".ln_1", b + ".attn", b + ".ln_2", b + ".mlp", b]
    names += ["text.ln_final"]
    return names


def run_with_taps(model, pix, ids, want_taps, cfg, dtype=torch.float64):
    modules = dict(model.named_modules())
    acts = OrderedDict()
    seq_first = not getattr(model.text.transformer, "batch_first", False)
    hooks = []
    if want_taps:
        for name in tap_names(cfg):
            def hook(mod, inp, out, name=name):
                if isinstance(out, tuple):  # nn.MultiheadAttention -> (out, weights)
                    out = out[0]
                out = out.detach()
                if seq_first and name.startswith("text.transformer."):
                    out = out.transpose(0, 1)  # (L, T, W) -> (T, L, W)
                assert name not in acts, f"tap {name} fired twice"
                acts[name] = out.to(torch.float32).contiguous().numpy()
            hooks.append(modules[name].register_forward_hook(hook))
    with torch.no_grad():
        x = torch.from_numpy(pix).to(dtype)
        t = torch.from_numpy(ids)
        img = model.encode_image(x)
        txt = model.encode_text(t)
        for h in hooks:
            h.remove()
        logits_per_image, _ = model.get_logits(x, t)
    acts["image_features"] = img.to(torch.float32).numpy()
    acts["text_features"] = txt.to(torch.float32).numpy()
    acts["logits_per_image"] = logits_per_image.to(torch.float32).numpy()
    # shape checks against docs/cli.md
    B, T = pix.shape[0], ids.shape[0]
    v, tc = cfg["vision"], cfg["text"]
    G = v["image_size"] // v["patch_size"]
    N, D, E, L, W = G * G + 1, v["width"], cfg["embed_dim"], tc["context_length"], tc["width"]
    for name, a in acts.items():
        if name == "visual.trunk.patch_embed":
            exp = (B, G * G, D)
        elif name.startswith("visual.trunk.") and name != "visual.trunk.head":
            exp = (B, N, D)
        elif name in ("visual.trunk.head", "image_features"):
            exp = (B, E)
        elif name.startswith("text."):
            exp = (T, L, W)
        elif name == "text_features":
            exp = (T, E)
        else:
            exp = (B, T)
        assert a.shape == exp, (name, a.shape, exp)
        assert np.all(np.isfinite(a)), f"non-finite values in {name}"
    return acts


# --------------------------------------------------------------------------------------------
# Weight naming and files.

def to_official(key, cfg):
    """open_clip/timm key -> official EVA-CLIP key (docs/model.md §9)."""
    if not key.startswith("visual.trunk."):
        return key
    k = "visual." + key[len("visual.trunk."):]
    if cfg["vision"]["mlp"] == "swiglu" or cfg["vision"]["qkv"] == "split":
        for a, b in ((".attn.q_proj.bias", ".attn.q_bias"), (".attn.v_proj.bias", ".attn.v_bias"),
                     (".attn.norm.", ".attn.inner_attn_ln."), (".mlp.fc1_g.", ".mlp.w1."),
                     (".mlp.fc1_x.", ".mlp.w2."), (".mlp.norm.", ".mlp.ffn_ln."),
                     (".mlp.fc2.", ".mlp.w3.")):
            k = k.replace(a, b)
    return k


DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def write_weights(path, state, cfg, dtype, official):
    out = OrderedDict()
    for k, v in state.items():
        name = to_official(k, cfg) if official else k
        assert name not in out, name
        t = v.detach().to(DTYPES[dtype]).contiguous().clone()
        # exactness: the values survive the cast unchanged
        assert torch.equal(t.to(torch.float64), v.detach().to(torch.float64)), f"{k} not exact in {dtype}"
        out[name] = t
    save_file(out, path, metadata={"evabench.config": config_json(cfg)})
    return path


def write_golden(path, cfg, weights_rel, generator, seed, pix, ids, acts, extra_attrs=None):
    # No object timestamps anywhere (root group, groups, datasets), so that regenerating gives
    # byte-identical files; creation order tracked so /acts lists taps in forward order.
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fcpl.set_link_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
    fcpl.set_attr_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
    fid = h5py.h5f.create(os.fsencode(path), h5py.h5f.ACC_TRUNC, fcpl=fcpl)

    def group(parent, name):
        gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        gcpl.set_obj_track_times(False)
        gcpl.set_link_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
        h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl)
        return parent[name]

    with h5py.File(fid) as f:
        f.attrs["schema"] = SCHEMA
        f.attrs["config"] = config_json(cfg)
        f.attrs["weights"] = weights_rel
        f.attrs["generator"] = generator
        f.attrs["seed"] = np.int64(seed)
        for k, v in (extra_attrs or {}).items():
            f.attrs[k] = v
        g = group(f, "inputs")
        g.create_dataset("pixel_values", data=pix.astype(np.float32), track_times=False)
        g.create_dataset("input_ids", data=ids.astype(np.int64), track_times=False)
        a = group(f, "acts")
        for name, arr in acts.items():
            a.create_dataset(name, data=arr.astype(np.float32), track_times=False)



# --------------------------------------------------------------------------------------------
# A user's checkpoint and inputs: --weights FILE --image ... --text ...

def checkpoint_config(path, args):
    """The config of a checkpoint: --config, --variant, its evabench.config metadata, or the
    open_clip_config.json beside it (matched against open_clip's packaged config of each variant)."""
    if args.config:
        with open(args.config) as f:
            return json.load(f, object_pairs_hook=OrderedDict), "--config"
    if args.variant:
        return VARIANTS[resolve_variant(args.variant)][1], "--variant"
    import convert_checkpoint as cc
    import ckpt_formats as cf
    src = cc.resolve_input(path)
    if src.endswith(".safetensors"):
        _, meta = cf.read_safetensors_header(src)
        if "evabench.config" in meta:
            return json.loads(meta["evabench.config"], object_pairs_hook=OrderedDict), "weights metadata"
    hub = os.path.join(path if os.path.isdir(path) else os.path.dirname(src), "open_clip_config.json")
    if os.path.isfile(hub):
        with open(hub) as f:
            mc = json.load(f).get("model_cfg")
        for official, (oc, cfg) in VARIANTS.items():
            if oc and mc == open_clip.get_model_config(oc):
                return cfg, "open_clip_config.json"
        raise SystemExit(f"make_golden.py: {hub}: matches no open_clip EVA-CLIP config; pass --variant or --config")
    raise SystemExit(f"make_golden.py: {path}: no evabench.config metadata and no open_clip_config.json "
                     "beside it; pass --variant or --config")


def checkpoint_state(path):
    """name -> float32 torch tensor, read (streamed per tensor) by convert_checkpoint's reader:
    safetensors (either naming), hub folders, official .pt, open_clip .bin, transformers shards."""
    import convert_checkpoint as cc
    import ckpt_formats as cf
    try:
        tensors, _ = cc.read_any(path, unsafe=False)
    except cf.FormatError as e:
        raise SystemExit(f"make_golden.py: {e}")
    out = OrderedDict()
    for k, src in tensors.items():
        raw = src.read_all()
        if src.dtype == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif src.dtype in ("F16", "F32", "F64"):
            a = np.frombuffer(raw, dtype={"F16": "<f2", "F32": "<f4", "F64": "<f8"}[src.dtype]).astype(np.float32)
        else:
            raise SystemExit(f"make_golden.py: {path}: tensor {k} has dtype {src.dtype}")
        out[k] = torch.from_numpy(a.reshape(src.shape).copy())
    return out


def load_into(model, cfg, state, path):
    """Copies the checkpoint into the upstream model; either naming; every tensor used once."""
    own = model.state_dict()
    used, missing, shape = set(), [], []
    new = OrderedDict()
    for k, v in own.items():
        cands = [k, to_official(k, cfg)]
        hit = next((c for c in cands if c in state), None)
        if hit is None:
            missing.append(k)
            continue
        if tuple(state[hit].shape) != tuple(v.shape):
            shape.append(f"{hit} {list(state[hit].shape)} != {list(v.shape)}")
            continue
        used.add(hit)
        new[k] = state[hit]
    extra = [k for k in state if k not in used]
    if missing or shape or extra:
        raise SystemExit(f"make_golden.py: {path} does not match config '{cfg['name']}': missing {missing[:4]}, "
                         f"wrong shape {shape[:4]}, unexpected {extra[:4]}")
    model.load_state_dict(new, strict=True)


def real_inputs(cfg, images, texts):
    """open_clip's eval preprocessing (EVA configs: OpenAI mean/std, bicubic, shortest-side resize,
    centre crop) and open_clip's tokenizer (SimpleTokenizer, ftfy)."""
    from PIL import Image
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    S, L, V = cfg["vision"]["image_size"], cfg["text"]["context_length"], cfg["text"]["vocab_size"]
    tf = open_clip.image_transform(S, is_train=False, mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD)
    pix = np.stack([tf(Image.open(p)).numpy() for p in images]).astype(np.float32)
    ids = open_clip.tokenize(texts, context_length=L).numpy().astype(np.int64)
    if ids.max() >= V:
        raise SystemExit(f"make_golden.py: token id {int(ids.max())} >= vocab_size {V} of config '{cfg['name']}' "
                         "(open_clip's tokenizer needs a 49408-entry vocabulary)")
    return pix, ids


def compute_dtype(n_params, choice):
    """float64 where the float64 model (and its float32 source, during the cast) fits in 70% of the
    available memory, else float32."""
    if choice != "auto":
        return choice
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    need = n_params * (8 + 4) + (1 << 30)
    return "float64" if avail is None or need < 0.7 * avail else "float32"


def main_weights(args, argv):
    if not args.image or not args.text:
        raise SystemExit("make_golden.py: --weights needs --image FILE... and --text STRING...")
    cfg, cfg_from = checkpoint_config(args.weights, args)
    oc = next((VARIANTS[o][0] for o in VARIANTS if VARIANTS[o][1] == cfg), None)
    torch.manual_seed(0)
    model = open_clip.create_model(oc, pretrained=None) if oc else build_custom(cfg)
    got = introspect_config(model, cfg["name"])
    if got != cfg:
        raise SystemExit("make_golden.py: built model does not match its config:\n"
                         f"  want {config_json(cfg)}\n  got  {config_json(got)}")
    load_into(model, cfg, checkpoint_state(args.weights), args.weights)
    model.eval()
    n = sum(p.numel() for p in model.parameters())
    dt = compute_dtype(n, args.compute_dtype)
    model = model.double() if dt == "float64" else model.float()
    pix, ids = real_inputs(cfg, args.image, args.text)
    acts = run_with_taps(model, pix, ids, not args.no_taps, cfg,
                         torch.float64 if dt == "float64" else torch.float32)
    os.makedirs(args.out_dir, exist_ok=True)
    stem = os.path.join(args.out_dir, args.name)
    wrel = os.path.relpath(os.path.abspath(args.weights), os.path.abspath(args.out_dir))
    cmd = " ".join(["golden/make_golden.py"] + (argv if argv is not None else sys.argv[1:]))
    generator = (f"make_golden.py: torch {torch.__version__}, open_clip_torch {OPEN_CLIP_VERSION}, "
                 f"timm {timm.__version__}, numpy {np.__version__}, h5py {h5py.__version__}; "
                 f"{dt} forward; user checkpoint and inputs; command: {cmd}")
    extra = {"compute_dtype": dt, "config_source": cfg_from,
             "images": json.dumps([os.path.basename(p) for p in args.image]),
             "texts": json.dumps(list(args.text))}
    write_golden(stem + ".h5", cfg, wrel, generator, 0, pix, ids, acts, extra)
    print(f"wrote {stem}.h5 ({os.path.getsize(stem + '.h5'):,} bytes): {cfg['name']} (config from {cfg_from}), "
          f"{n:,} parameters, {dt} forward, {len(args.image)} images, {len(args.text)} texts, {len(acts)} taps")
    print(f"logits_per_image {acts['logits_per_image'].tolist()}")


# --------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Golden activations for evabench from upstream open_clip/timm modules "
                    "(random weights, float64 forward).")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--variant", help="open_clip or official variant name (full size)")
    src.add_argument("--tiny", choices=list(TINY), help="tiny model of one family")
    src.add_argument("--config", help="with --weights: config JSON of the checkpoint")
    ap.add_argument("--weights", help="a user's checkpoint (safetensors, hub folder, official .pt, open_clip "
                                      ".bin, transformers shards): golden of these weights on --image/--text")
    ap.add_argument("--image", nargs="+", help="with --weights: image files (open_clip's eval preprocessing)")
    ap.add_argument("--text", nargs="+", help="with --weights: captions (open_clip's tokenizer)")
    ap.add_argument("--compute-dtype", choices=["auto", "float64", "float32"], default="auto",
                    help="with --weights: forward dtype (auto: float64 when it fits in memory)")
    ap.add_argument("--out-dir", required=True, help="output folder")
    ap.add_argument("--name", required=True, help="file stem: STEM.h5, STEM.safetensors")
    ap.add_argument("--images", type=int, default=2, help="number of images B (default 2)")
    ap.add_argument("--texts", type=int, default=3, help="number of texts T (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="seed of weights and inputs (default 0)")
    ap.add_argument("--dtype", choices=list(DTYPES), default="f32",
                    help="dtype of STEM.safetensors (default f32)")
    ap.add_argument("--naming", choices=["openclip", "official"], default=None,
                    help="names in STEM.safetensors (default: openclip; official for 8b/18b)")
    ap.add_argument("--extra-weights", default="",
                    help="comma list of extra copies of the same weights: f32, f16, bf16 "
                         "(STEM.<dtype>.safetensors, main naming) and official "
                         "(STEM.official.safetensors, f32)")
    ap.add_argument("--no-taps", action="store_true",
                    help="store only image_features, text_features, logits_per_image")
    ap.add_argument("--print-params", action="store_true", help="print parameter counts")
    args = ap.parse_args(argv)

    if args.weights:
        if args.tiny:
            ap.error("--weights takes --variant or --config, not --tiny")
        return main_weights(args, argv)
    if not (args.variant or args.tiny):
        ap.error("one of --variant, --tiny or --weights is required")
    if args.images < 1 or args.texts < 1:
        ap.error("--images and --texts must be >= 1")
    torch.manual_seed(args.seed)  # upstream inits draw from torch's RNG; values are overwritten
    if args.variant:
        official = resolve_variant(args.variant)
        model, cfg = build_variant(official)
        family_official_only = False
    else:
        cfg = TINY[args.tiny]
        model = build_custom(cfg)
        family_official_only = cfg["vision"]["norm"] == "rmsnorm"
    got = introspect_config(model, cfg["name"])
    if got != cfg:
        raise SystemExit("make_golden.py: built model does not match its config:\n"
                         f"  want {config_json(cfg)}\n  got  {config_json(got)}")
    naming = args.naming or ("official" if family_official_only else "openclip")
    if family_official_only and naming != "official":
        ap.error("the 8B/18B families exist only in the official naming")

    model.eval()
    n_vis = sum(p.numel() for p in model.visual.parameters())
    n_txt = sum(p.numel() for p in model.text.parameters())
    n_all = sum(p.numel() for p in model.parameters())
    if args.print_params or args.variant:
        print(f"{cfg['name']}: parameters total {n_all:,} (image {n_vis:,}, text {n_txt:,}, "
              f"logit_scale {n_all - n_vis - n_txt})")

    ss = np.random.SeedSequence(args.seed)
    rng_w, rng_in = [np.random.default_rng(s) for s in ss.spawn(2)]
    randomize(model, rng_w)
    model.double()
    pix, ids = make_inputs(cfg, args.images, args.texts, rng_in)
    acts = run_with_taps(model, pix, ids, not args.no_taps, cfg)

    os.makedirs(args.out_dir, exist_ok=True)
    state = model.state_dict()  # persistent entries only: no k_bias, rope table, attn_mask
    for k in state:
        assert "rope" not in k and not k.endswith("k_bias") and "attn_mask" not in k, k
    stem = os.path.join(args.out_dir, args.name)
    main_w = stem + ".safetensors"
    write_weights(main_w, state, cfg, args.dtype, naming == "official")
    written = [main_w]
    for extra in [e.strip() for e in args.extra_weights.split(",") if e.strip()]:
        if extra in DTYPES:
            written.append(write_weights(f"{stem}.{extra}.safetensors", state, cfg, extra,
                                         naming == "official"))
        elif extra == "official":
            written.append(write_weights(f"{stem}.official.safetensors", state, cfg, "f32", True))
        else:
            ap.error(f"--extra-weights: unknown entry '{extra}' (f32, f16, bf16, official)")

    cmd = " ".join(["golden/make_golden.py"] + (argv if argv is not None else sys.argv[1:]))
    generator = (f"make_golden.py: torch {torch.__version__}, open_clip_torch {OPEN_CLIP_VERSION}, "
                 f"timm {timm.__version__}, numpy {np.__version__}, h5py {h5py.__version__}; "
                 f"float64 forward; command: {cmd}")
    write_golden(stem + ".h5", cfg, os.path.basename(main_w), generator, args.seed, pix, ids, acts)
    written.append(stem + ".h5")
    for p in written:
        print(f"wrote {p} ({os.path.getsize(p):,} bytes)")
    mx = max(float(np.abs(a).max()) for a in acts.values())
    print(f"taps {len(acts)}, max |act| {mx:.4g}, logits_per_image {acts['logits_per_image'].tolist()}")


if __name__ == "__main__":
    main()
