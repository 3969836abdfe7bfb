#!/usr/bin/env python3
"""make_zeroshot_data.py: zero-shot protocol data and parity data for evabench, from upstream.

What it owns:
  1. golden/embed/imagenet_classnames.txt, openai_templates.txt, simple_templates.txt: the 1000
     OpenAI-curated ImageNet class names and the 80 / 7 ImageNet prompt templates, taken from
     open_clip's package (open_clip.zero_shot_metadata: IMAGENET_CLASSNAMES,
     OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES), one per line; a template's class-name
     slot is written "{}" (the template callables are called with "{}"). Not typed by hand.
  2. golden/zeroshot/images/: a small labelled image folder (8 class subfolders, 3 images each,
     synthetic pictures in mixed formats, modes and sizes: PNG RGB/RGBA/grey/palette, JPEG
     RGB/grey) with classnames.txt.
  3. For each tiny random-weight model (families eva02, eva01, 8b; full 49408-entry vocabulary so
     that real BPE ids fit; weights bf16 exact): golden/zeroshot/<model>.safetensors, and open_clip's
     own zero-shot pipeline on that folder:
        classifier: open_clip.zero_shot_classifier.build_zero_shot_classifier (open_clip tokenizer,
                    the 80 OpenAI templates)
        images:     torchvision ImageFolder (its loader: PIL open + convert('RGB'), sorted classes,
                    sorted files) with open_clip.image_transform(S, is_train=False) (the eval
                    preprocessing of create_model_and_transforms for these models)
        logits:     100 * normalize(encode_image(x)) @ classifier, as open_clip_train/zero_shot.py
     written to <model>.h5 (/logits [N,C] float64, /top5 [N,5], /labels [N], /classifier [C,E]
     float64, attrs: metrics, config, generator) and <model>.predictions.csv (evabench's
     --predictions format: path,label,top1..top5).
  4. golden/zeroshot/eva02.imagenet_classifier.h5: open_clip's classifier for the 1000 ImageNet
     class names x 80 templates through the tiny eva02 text tower (/classifier [1000,E] float64):
     the 80,000-prompt check of the C tokenizer + text tower.

The models run in float64 (model.double()); the classifier is built in float64 too.
Model construction and randomisation are imported from make_golden.py (upstream open_clip/timm
modules, every parameter random, values exact in bf16 and fp16).

Usage: golden/.venv/bin/python golden/make_zeroshot_data.py [--skip-imagenet-classifier]
Deterministic (fixed seeds).
"""
import argparse
import csv
import io
import json
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

import h5py
import open_clip
import timm
import torchvision
from open_clip import zero_shot_metadata as zsm
from open_clip.zero_shot_classifier import build_zero_shot_classifier
from open_clip.version import __version__ as OPEN_CLIP_VERSION

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden as mg  # noqa: E402

EMBED = os.path.join(HERE, "embed")
OUT = os.path.join(HERE, "zeroshot")
IMAGES = os.path.join(OUT, "images")

# Tiny models: make_golden's vision towers, a text tower with the full CLIP vocabulary (49408) so
# the real BPE ids fit; width 16 keeps the token embedding at 0.8 M values (1.6 MB in bf16).
ZS_TEXT = mg._txt(16, 2, 2, vocab=49408, ctx=77)
MODELS = [
    # name, family of make_golden.TINY, seed
    ("eva02", "eva02", 601),
    ("eva01", "eva01", 602),
    ("8b", "8b", 603),
]

# The parity folder: class folder -> class name (classnames.txt order = sorted folder order).
CLASSES = [
    ("n01_airplane", "airplane"),
    ("n02_bicycle", "bicycle"),
    ("n03_cat", "cat"),
    ("n04_golden_retriever", "golden retriever"),
    ("n05_guitar", "electric guitar"),
    ("n06_mug", "coffee mug"),
    ("n07_sunflower", "sunflower"),
    ("n08_oak", "oak tree"),
]
# Three images per class, cycling through these (name suffix, format, PIL mode, width, height).
KINDS = [
    ("a.png", "PNG", "RGB", 64, 48),
    ("b.jpg", "JPEG", "RGB", 37, 91),
    ("c.png", "PNG", "RGBA", 120, 120),
    ("d.jpeg", "JPEG", "L", 53, 40),
    ("e.png", "PNG", "L", 40, 40),
    ("f.png", "PNG", "P", 90, 33),
    ("g.JPG", "JPEG", "RGB", 200, 150),
    ("h.png", "PNG", "RGB", 28, 28),
]


def write_lines(path, lines):
    for s in lines:
        assert "\n" not in s and "\r" not in s and s == s.strip() and s, repr(s)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(s + "\n" for s in lines))
    print(f"wrote {path} ({len(lines)} lines)")


def write_protocol_files():
    names = list(zsm.IMAGENET_CLASSNAMES)
    openai = [t("{}") for t in zsm.OPENAI_IMAGENET_TEMPLATES]
    simple = [t("{}") for t in zsm.SIMPLE_IMAGENET_TEMPLATES]
    assert len(names) == 1000 and len(openai) == 80 and len(simple) == 7
    for t in openai + simple:
        assert t.count("{}") == 1, t
        # the callables are plain f-strings: check the rendering with a real name too
    for t, f in zip(openai, zsm.OPENAI_IMAGENET_TEMPLATES):
        assert t.replace("{}", "tench") == f("tench")
    write_lines(os.path.join(EMBED, "imagenet_classnames.txt"), names)
    write_lines(os.path.join(EMBED, "openai_templates.txt"), openai)
    write_lines(os.path.join(EMBED, "simple_templates.txt"), simple)
    return names, openai, simple


def make_picture(rng, cls_idx, kind_idx, w, h):
    """A synthetic RGB picture: class-dependent background colour and shape, random noise."""
    base = np.array([(37 * cls_idx + 40) % 256, (91 * cls_idx + 20) % 256, (53 * cls_idx + 170) % 256],
                    dtype=np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    grad = (xx / max(w - 1, 1))[..., None] * 60.0 - (yy / max(h - 1, 1))[..., None] * 40.0
    arr = base[None, None, :] + grad + rng.normal(0, 18, size=(h, w, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    cx, cy = int(rng.integers(w // 4, 3 * w // 4 + 1)), int(rng.integers(h // 4, 3 * h // 4 + 1))
    r = max(3, min(w, h) // 3)
    col = tuple(int(c) for c in rng.integers(0, 256, size=3))
    if cls_idx % 3 == 0:
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=col)
    elif cls_idx % 3 == 1:
        d.rectangle([cx - r, cy - r // 2, cx + r, cy + r // 2], fill=col)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=col)
    d.line([(0, int(rng.integers(0, h))), (w - 1, int(rng.integers(0, h)))], fill=(255 - col[0], col[1], 0),
           width=2)
    return img


def write_image_folder():
    rng = np.random.default_rng(6060)
    os.makedirs(IMAGES, exist_ok=True)
    for ci, (folder, _) in enumerate(CLASSES):
        d = os.path.join(IMAGES, folder)
        os.makedirs(d, exist_ok=True)
        for j in range(3):
            ki = (3 * ci + j) % len(KINDS)
            suffix, fmt, mode, w, h = KINDS[ki]
            img = make_picture(rng, ci, ki, w, h)
            if mode == "RGBA":
                # alpha fully opaque: RGBA -> RGB conversion order (before/after resize) then
                # cannot matter; the alpha channel is still present in the file.
                img = img.convert("RGBA")
            elif mode == "L":
                img = img.convert("L")
            elif mode == "P":
                img = img.convert("P", palette=Image.ADAPTIVE, colors=64)
            path = os.path.join(d, f"img{j}_{suffix}")
            kw = {"quality": 85} if fmt == "JPEG" else {"optimize": False}
            img.save(path, fmt, **kw)
    write_lines(os.path.join(IMAGES, "classnames.txt"), [n for _, n in CLASSES])


def zs_config(family, name):
    base = mg.TINY[family]
    return mg.make_config(name, base["embed_dim"], dict(base["vision"]), dict(ZS_TEXT))


def build_model(family, seed, name):
    cfg = zs_config(family, name)
    torch.manual_seed(seed)
    model = mg.build_custom(cfg)
    got = mg.introspect_config(model, cfg["name"])
    assert got == cfg, (got, cfg)
    rng_w = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    mg.randomize(model, rng_w)
    model.eval()
    return model, cfg


def generator_text():
    return (f"make_zeroshot_data.py: torch {torch.__version__}, open_clip_torch {OPEN_CLIP_VERSION}, "
            f"timm {timm.__version__}, torchvision {torchvision.__version__}, "
            f"Pillow {Image.__version__ if hasattr(Image, '__version__') else '?'}, numpy {np.__version__}; "
            "float64 forward; open_clip build_zero_shot_classifier + image_transform(is_train=False) + "
            "torchvision ImageFolder")


def h5_create(path):
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fid = h5py.h5f.create(os.fsencode(path), h5py.h5f.ACC_TRUNC, fcpl=fcpl)
    return h5py.File(fid)


def run_folder(model, cfg, classnames, templates):
    S = cfg["vision"]["image_size"]
    preprocess = open_clip.image_transform(S, is_train=False)
    ds = torchvision.datasets.ImageFolder(IMAGES, transform=preprocess)
    with torch.no_grad():
        model.double()
        clf = build_zero_shot_classifier(model, tokenizer=open_clip.tokenize, classnames=classnames,
                                         templates=templates, num_classes_per_batch=10, device="cpu")
        logits, labels = [], []
        for x, y in torch.utils.data.DataLoader(ds, batch_size=8, shuffle=False, num_workers=0):
            out = model(image=x.double())
            f = out["image_features"] if isinstance(out, dict) else out[0]
            logits.append(100.0 * f @ clf)
            labels.append(y)
        logits = torch.cat(logits).numpy()
        labels = torch.cat(labels).numpy()
    paths = [os.path.relpath(p, IMAGES) for p, _ in ds.samples]
    return clf.T.numpy(), logits, labels, paths


def metrics(logits, labels):
    order = np.argsort(-logits, axis=1, kind="stable")
    top5 = order[:, :5]
    acc1 = float(np.mean(top5[:, 0] == labels))
    acc5 = float(np.mean([labels[i] in top5[i] for i in range(len(labels))]))
    rec = [np.mean(top5[labels == c, 0] == c) for c in np.unique(labels)]
    return top5, acc1, acc5, float(np.mean(rec))


def write_model_parity(name, family, seed, classnames, templates):
    model, cfg = build_model(family, seed, f"tiny-zs-{name}")
    official = cfg["vision"]["norm"] == "rmsnorm"  # 8B/18B exist only in the official naming
    wpath = os.path.join(OUT, f"{name}.safetensors")
    mg.write_weights(wpath, model.state_dict(), cfg, "bf16", official)
    clf, logits, labels, paths = run_folder(model, cfg, classnames, templates)
    top5, acc1, acc5, mpcr = metrics(logits, labels)
    srt = -np.sort(-logits, axis=1)
    gap12 = float(np.min(srt[:, 0] - srt[:, 1]))
    gap56 = float(np.min(srt[:, 4] - srt[:, 5])) if logits.shape[1] > 5 else float("inf")
    with h5_create(os.path.join(OUT, f"{name}.h5")) as f:
        f.attrs["schema"] = "evabench-zeroshot-parity/1"
        f.attrs["config"] = mg.config_json(cfg)
        f.attrs["weights"] = os.path.basename(wpath)
        f.attrs["generator"] = generator_text()
        f.attrs["seed"] = np.int64(seed)
        f.attrs["templates"] = "openai"
        f.attrs["acc1"], f.attrs["acc5"], f.attrs["mean_per_class_recall"] = acc1, acc5, mpcr
        f.create_dataset("logits", data=logits.astype(np.float64), track_times=False)
        f.create_dataset("top5", data=top5.astype(np.int32), track_times=False)
        f.create_dataset("labels", data=labels.astype(np.int32), track_times=False)
        f.create_dataset("classifier", data=clf.astype(np.float64), track_times=False)
    with open(os.path.join(OUT, f"{name}.predictions.csv"), "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["path", "label", "top1", "top2", "top3", "top4", "top5"])
        for p, y, t in zip(paths, labels, top5):
            w.writerow([p, int(y)] + [int(v) for v in t])
    print(f"{name}: {len(paths)} images, acc1 {acc1:.4f} acc5 {acc5:.4f} mpcr {mpcr:.4f}; "
          f"min top1-top2 gap {gap12:.4f}, min top5-top6 gap {gap56:.4f}")
    return model, cfg


def write_imagenet_classifier(model, cfg, names, openai):
    with torch.no_grad():
        model.double()
        clf = build_zero_shot_classifier(model, tokenizer=open_clip.tokenize, classnames=names,
                                         templates=openai, num_classes_per_batch=10, device="cpu")
    path = os.path.join(OUT, "eva02.imagenet_classifier.h5")
    with h5_create(path) as f:
        f.attrs["schema"] = "evabench-zeroshot-classifier/1"
        f.attrs["weights"] = "eva02.safetensors"
        f.attrs["generator"] = generator_text()
        f.attrs["templates"] = "openai"
        f.attrs["classnames"] = "imagenet1k (open_clip IMAGENET_CLASSNAMES)"
        f.create_dataset("classifier", data=clf.T.numpy().astype(np.float64), track_times=False)
    print(f"wrote {path} [{clf.shape[1]} x {clf.shape[0]}]")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-imagenet-classifier", action="store_true",
                    help="do not rebuild eva02.imagenet_classifier.h5 (80,000 prompts, ~1 min)")
    args = ap.parse_args(argv)
    names, openai, simple = write_protocol_files()
    os.makedirs(OUT, exist_ok=True)
    write_image_folder()
    folder_names = [n for _, n in CLASSES]
    # templates as format() strings, exactly what the embedded file holds
    for name, family, seed in MODELS:
        model, cfg = write_model_parity(name, family, seed, folder_names, openai)
        if name == "eva02" and not args.skip_imagenet_classifier:
            write_imagenet_classifier(model, cfg, names, openai)


if __name__ == "__main__":
    main()
