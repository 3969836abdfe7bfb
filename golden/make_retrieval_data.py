#!/usr/bin/env python3
"""make_retrieval_data.py: zero-shot retrieval parity data for evabench, computed by CLIP_benchmark.

What it writes (golden/retrieval/):
  coco/        CLIP_benchmark's mscoco_captions layout: coco/val2014/<file_name> images (copied from
               golden/parity/images: PNG 1/L/I;16/P/LA, interlaced, JPEG L/CMYK/progressive, sizes
               7x5 .. 375x500) and coco/coco_test_karpathy.json (COCO format: images[{id, file_name}],
               annotations[{id, image_id, caption}]; image ids not in file order, annotations
               interleaved across images, 2..5 captions per image, commas, quotes, non-ASCII,
               HTML entities and one caption longer than the 77-token context).
               coco/captions.csv: the same pairs in the `captions` layout (path,caption CSV, quoted
               fields, rows in CocoCaptions order) so that layout must give the COCO numbers.
  flickr/      CLIP_benchmark's flickr30k layout: flickr/<NNN>.jpg images (from golden/zeroshot/images;
               PNG and JPEG content, every name ends in .jpg as in Flickr30k) and
               flickr/flickr30k_test_karpathy.txt (a header line, then NAME.jpg,caption; captions
               with commas, 1..5 per image, images in first-appearance order).
  expected/<model>.<dataset>.json          CLIP_benchmark's result (its cli.py dump shape: dataset,
               model, pretrained, task, metrics) plus the hit counts behind every recall.
  expected/<model>.<dataset>.h5            image_embeds [I,E], text_embeds [T,E], scores [T,I]
               (float64), texts_image_index [T], t2i_topk [T,10], i2t_topk [I,10] (torch.topk).
  expected/<model>.<dataset>.predictions.csv   evabench retrieval --predictions format.
  expected/eva02.mscoco_captions.without_<stem>.json  the COCO set with one image (and its
               captions) removed from the annotations: what evabench must report when that image
               file is corrupt (it skips the image and the captions that point at it).

How: the datasets are built exactly as CLIP_benchmark's datasets/builder.py builds them
(torchvision CocoCaptions(root/val2014, annFile) and clip_benchmark.datasets.flickr.Flickr), with
open_clip.image_transform(S, is_train=False) and open_clip.tokenize, loaded by a DataLoader with
CLIP_benchmark's image_captions_collate_fn, and scored by
clip_benchmark.metrics.zeroshot_retrieval.evaluate(amp=False, recall_k_list=[1, 2, 5, 10]).
The models are the tiny random-weight ones of golden/zeroshot (eva02, eva01, 8b families; rebuilt
from make_zeroshot_data.py's seeds and checked byte for byte against the committed files) run in
float64 (a thin wrapper casts the image batch to double; nothing else changes).

Usage: golden/.venv/bin/python golden/make_retrieval_data.py   (deterministic, about 30 s)
"""
import csv
import hashlib
import io
import json
import locale
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
import h5py
import open_clip
import clip_benchmark
from clip_benchmark.metrics import zeroshot_retrieval
from clip_benchmark.datasets import flickr as cb_flickr
from clip_benchmark.datasets.builder import image_captions_collate_fn, get_dataset_collate_fn
from torchvision.datasets import CocoCaptions

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden as mg  # noqa: E402
import make_zeroshot_data as mz  # noqa: E402

OUT = os.path.join(HERE, "retrieval")
PARITY_IMAGES = os.path.join(HERE, "parity", "images")
ZS_IMAGES = os.path.join(HERE, "zeroshot", "images")
RECALL_K = [1, 2, 5, 10]
KMAX = 10
MODELS = [("eva02", "eva02", 601), ("eva01", "eva01", 602), ("8b", "8b", 603)]
LONG = ("a very long caption that keeps going " + "with many more words about the scene, " * 12).strip()

# COCO: (image id, file name in val2014/, source file in golden/parity/images)
COCO_IMAGES = [
    (397133, "COCO_val2014_000000397133.jpg", "jpeg_progressive_375x500.jpg"),
    (42, "COCO_val2014_000000000042.jpg", "jpeg_grey_320x240.jpg"),
    (139, "COCO_val2014_000000000139.png", "png_interlaced_123x77.png"),
    (5001, "COCO_val2014_000000005001.jpg", "jpeg_cmyk_300x200.jpg"),
    (724, "COCO_val2014_000000000724.png", "png_la_150x200.png"),
    (77, "COCO_val2014_000000000077.png", "png_grey16_120x90.png"),
    (90001, "COCO_val2014_000000090001.png", "png_palette_trns_200x120.png"),
    (3, "COCO_val2014_000000000003.png", "png_bilevel_64x48.png"),
    (1800, "COCO_val2014_000000001800.png", "png_grey4_41x29.png"),
    (250, "COCO_val2014_000000000250.png", "png_palette4_97x61.png"),
    (16, "COCO_val2014_000000000016.png", "png_tiny_7x5.png"),
    (61000, "COCO_val2014_000000061000.png", "png_grey_97x61.png"),
]
# captions per image id, in annotation order for that image
COCO_CAPTIONS = {
    397133: ["A man is in a kitchen making pizzas.", "Man in apron standing on front of oven with pans, bakeware",
             "A baker is working in the kitchen rolling dough.", "A person standing by a stove in a kitchen.",
             "A table with pies being made and a person standing near a wall with pots and pans hanging on the wall."],
    42: ["This wire metal rack holds several pairs of shoes and sandals", "A dog sleeping on a show rack in the shoes.",
         "Various slides and other footwear rest in a metal basket outdoors."],
    139: ["A woman stands in the dining area at the table.", "A room with chairs, a table, and a woman in it.",
          "A woman standing in a kitchen by a window", "A person standing at a table in a room."],
    5001: ["Un café crème sur une table en bois, à Paris.", "Two cups of coffee — one black, one with milk."],
    724: ["A stop sign is mounted upside-down on it's post.", "A stop sign that is hanging upside down.",
          "An upside down stop sign by the road.", LONG],
    77: ["A group of teenage boys on skateboards \"riding\" down a ramp.",
         "Some kids are doing tricks on their skateboards, in the sun.", "Skateboarders in a park; one is jumping."],
    90001: ["東京の夜景と高層ビル", "A city at night with tall buildings &amp; lights.", "Neon signs in Tokyo, Japan."],
    3: ["Black and white line drawing of a bicycle.", "A sketch: a bike leaning on a wall, naïve style."],
    1800: ["A grey blurry picture of a cat.", "Cat sitting,   looking at the camera.",
           "An out of focus photo of a kitten.", "A small grey kitten on a sofa."],
    250: ["Colourful pixel art of a mushroom.", "An 8-bit image, four colours, of a red mushroom."],
    16: ["A tiny image, almost nothing visible.", "A few pixels of green and blue, 7 by 5.",
         "Ein winziges Bild mit Grün und Blau."],
    61000: ["A grey gradient with a dark square in the corner.", "Abstract art: grey tones, shapes, and lines.",
            "Monochrome pattern.", "ÄÖÜ grey shapes, à la mode."],
}
# Flickr: (name in flickr/, source relative to golden/zeroshot/images)
FLICKR_IMAGES = [
    ("1000092795.jpg", "n01_airplane/img0_a.png"),
    ("10002456.jpg", "n01_airplane/img1_b.jpg"),
    ("1000268201.jpg", "n02_bicycle/img0_d.jpeg"),
    ("1000344755.jpg", "n02_bicycle/img2_f.png"),
    ("1000366164.jpg", "n03_cat/img0_g.JPG"),
    ("1000523639.jpg", "n03_cat/img1_h.png"),
    ("1000919630.jpg", "n04_golden_retriever/img1_c.png"),
    ("10010052.jpg", "n05_guitar/img1_f.png"),
    ("1001465944.jpg", "n06_mug/img0_h.png"),
    ("1001545525.jpg", "n07_sunflower/img0_c.png"),
    ("1001573224.jpg", "n08_oak/img1_g.JPG"),
]
FLICKR_CAPTIONS = {
    "1000092795.jpg": ["Two young guys with shaggy hair look at their hands while hanging out in the yard.",
                       "An airplane, white and blue, flying over a field.", "A jet in a clear sky.",
                       "Plane taking off, wheels down, at dusk.", "A small aircraft above the trees."],
    "10002456.jpg": ["Several men in hard hats are operating a giant pulley system.", "A blue plane on the runway"],
    "1000268201.jpg": ["A child in a pink dress is climbing up a set of stairs in an entry way.",
                       "A bicycle leaning against a fence, grey morning, quiet street.",
                       "Black and white photo of a bike."],
    "1000344755.jpg": ["Someone in a blue shirt and hat is standing on stair and leaning against a window.",
                       "A man, a bike, and a bridge."],
    "1000366164.jpg": ["A cat, sleeping on a red couch.", "Die Katze schläft auf dem Sofa.",
                       "A tabby cat with green eyes, looking up.", "A kitten plays with yarn."],
    "1000523639.jpg": ["A small icon of a cat face."],
    "1000919630.jpg": ["A golden retriever runs through the grass, tongue out.", "A dog catching a frisbee.",
                       "Happy dog on the beach at sunset, waves behind it."],
    "10010052.jpg": ["An electric guitar on a stand, red and white.", "Guitar, amplifier, cables: a stage.",
                     "A musician plays a Fender guitar — loudly."],
    "1001465944.jpg": ["A coffee mug on a desk, steam rising.", "Mug with \"world's best dad\" printed on it.",
                       "A white cup, half full, next to a laptop.", "Café au lait in a big mug.",
                       "An empty mug, cracked, on a shelf."],
    "1001545525.jpg": ["A field of sunflowers under a blue sky.", "One tall sunflower, facing the sun."],
    "1001573224.jpg": ["An old oak tree in autumn, leaves falling.", "A big tree, alone in a green field, at noon.",
                       "Eichenblätter im Herbst, gelb und braun."],
}
# Flickr annotation line order: interleaved (the dataset groups by first appearance).
FLICKR_ORDER = [0, 1, 2, 0, 3, 4, 5, 0, 6, 7, 1, 8, 9, 10, 2, 3, 4, 4, 6, 7, 8, 8, 9, 10, 0, 4, 6, 7, 8, 10, 2, 0, 8]
# COCO annotation order: interleaved too (per image the order of its captions is kept).
CORRUPT_STEM = "COCO_val2014_000000000139"


def write_coco():
    root = os.path.join(OUT, "coco")
    img_dir = os.path.join(root, "val2014")
    if os.path.isdir(root):
        shutil.rmtree(root)
    os.makedirs(img_dir)
    for _, fname, src in COCO_IMAGES:
        shutil.copyfile(os.path.join(PARITY_IMAGES, src), os.path.join(img_dir, fname))
    images = [{"id": iid, "file_name": fname, "width": 0, "height": 0} for iid, fname, _ in COCO_IMAGES]
    # interleave: round-robin over the images (in file order) until every caption is out
    queues = [(iid, list(COCO_CAPTIONS[iid])) for iid, _, _ in COCO_IMAGES]
    anns, ann_id = [], 900
    while any(q for _, q in queues):
        for iid, q in queues:
            if q:
                anns.append({"image_id": iid, "id": ann_id, "caption": q.pop(0)})
                ann_id += 7
    with open(os.path.join(root, "coco_test_karpathy.json"), "w", encoding="utf-8") as f:
        json.dump({"images": images, "annotations": anns}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    # the captions layout: same pairs, CocoCaptions order (image id ascending, annotation order)
    with open(os.path.join(root, "captions.csv"), "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "caption"])
        for iid, fname, _ in sorted(COCO_IMAGES):
            for c in COCO_CAPTIONS[iid]:
                w.writerow(["val2014/" + fname, c])
    return root


def write_coco_without(root, stem):
    """The annotation file minus one image and its captions (for the corrupt-image expectation)."""
    with open(os.path.join(root, "coco_test_karpathy.json"), encoding="utf-8") as f:
        d = json.load(f)
    gone = [im["id"] for im in d["images"] if im["file_name"].startswith(stem)]
    assert len(gone) == 1
    d["images"] = [im for im in d["images"] if im["id"] != gone[0]]
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] != gone[0]]
    tmp = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8")
    json.dump(d, tmp, ensure_ascii=False)
    tmp.close()
    return tmp.name


def write_flickr():
    root = os.path.join(OUT, "flickr")
    if os.path.isdir(root):
        shutil.rmtree(root)
    os.makedirs(root)
    for name, src in FLICKR_IMAGES:
        shutil.copyfile(os.path.join(ZS_IMAGES, src), os.path.join(root, name))
    queues = {n: list(c) for n, c in FLICKR_CAPTIONS.items()}
    lines = ["image,caption"]
    for i in FLICKR_ORDER:
        name = FLICKR_IMAGES[i][0]
        lines.append(f"{name},{queues[name].pop(0)}")
    assert not any(queues.values()), queues
    for ln in lines[1:]:
        assert ln.count(".jpg,") == 1, ln
    with open(os.path.join(root, "flickr30k_test_karpathy.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    return root


class Float64Model(torch.nn.Module):
    """The open_clip model in float64: casts the float32 image batch from the DataLoader."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def encode_image(self, x):
        return self.m.encode_image(x.double())

    def encode_text(self, t):
        return self.m.encode_text(t)


def load_model(name, family, seed):
    model, cfg = mz.build_model(family, seed, f"tiny-zs-{name}")
    official = cfg["vision"]["norm"] == "rmsnorm"
    committed = os.path.join(HERE, "zeroshot", f"{name}.safetensors")
    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, "w.safetensors")
        mg.write_weights(p, model.state_dict(), cfg, "bf16", official)
        with open(p, "rb") as a, open(committed, "rb") as b:
            assert a.read() == b.read(), f"rebuilt {name} differs from {committed}"
    model.double().eval()
    return Float64Model(model), cfg


def build_dataset(kind, root, transform, ann=None):
    """As clip_benchmark.datasets.builder.build_dataset builds these two (split test)."""
    if kind == "mscoco_captions":
        return CocoCaptions(root=os.path.join(root, "val2014"), annFile=ann or f"{root}/coco_test_karpathy.json",
                            transform=transform)
    return cb_flickr.Flickr(root=root, ann_file=ann or f"{root}/flickr30k_test_karpathy.txt", transform=transform)


def ds_names(kind, ds):
    if kind == "mscoco_captions":
        return ["val2014/" + ds.coco.loadImgs(i)[0]["file_name"] for i in ds.ids]
    return [n for n, _ in ds.data]


def captured_evaluate(model, loader):
    """CLIP_benchmark's evaluate, with the embeddings it computes captured on the side."""
    seen = {"img": [], "txt": []}
    orig = zeroshot_retrieval.F.normalize

    def spy(x, dim=-1):
        y = orig(x, dim=dim)
        (seen["img"] if x.dim() == 2 and len(seen["img"]) == len(seen["txt"]) else seen["txt"]).append(y)
        return y

    zeroshot_retrieval.F.normalize = spy
    try:
        metrics = zeroshot_retrieval.evaluate(model, loader, open_clip.tokenize, device="cpu", amp=False,
                                              recall_k_list=RECALL_K)
    finally:
        zeroshot_retrieval.F.normalize = orig
    return metrics, torch.cat(seen["img"]), torch.cat(seen["txt"])


def run(kind, root, model, cfg, ann=None):
    transform = open_clip.image_transform(cfg["vision"]["image_size"], is_train=False)
    ds = build_dataset(kind, root, transform, ann)
    assert get_dataset_collate_fn(kind) is image_captions_collate_fn
    loader = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=False, num_workers=0,
                                         collate_fn=image_captions_collate_fn)
    with torch.no_grad():
        metrics, img, txt = captured_evaluate(model, loader)
    caps = [c for i in range(len(ds)) for c in (ds._load_target(ds.ids[i]) if kind == "mscoco_captions"
                                                 else ds.data[i][1])]
    tii = [i for i in range(len(ds)) for _ in (ds._load_target(ds.ids[i]) if kind == "mscoco_captions"
                                                else ds.data[i][1])]
    assert img.shape[0] == len(ds) and txt.shape[0] == len(caps)
    return metrics, img.numpy(), txt.numpy(), np.array(tii), ds_names(kind, ds), caps


def analyse(metrics, img, txt, tii):
    """Hit counts and top-k lists as CLIP_benchmark's recall_at_k sees them (torch.topk)."""
    scores = torch.from_numpy(txt @ img.T)
    T, I = scores.shape
    t2i = torch.topk(scores, KMAX, dim=1)[1].numpy()
    i2t = torch.topk(scores.T, KMAX, dim=1)[1].numpy()
    counts, gaps = {}, []
    for k in RECALL_K:
        th = int(sum(tii[t] in t2i[t, :k] for t in range(T)))
        ih = int(sum(any(tii[j] == i for j in i2t[i, :k]) for i in range(I)))
        for name, hits, n in (("image_retrieval_recall", th, T), ("text_retrieval_recall", ih, I)):
            key = f"{name}@{k}"
            # CLIP_benchmark: float32 mean of 0/1 = float32(hits) / float32(n) (CPU mean = sum / n)
            assert metrics[key] == float(np.float32(hits) / np.float32(n)), (key, metrics[key], hits, n)
            counts[key] = [hits, n]
        s = np.sort(scores.numpy(), axis=1)[:, ::-1]
        st = np.sort(scores.numpy().T, axis=1)[:, ::-1]
        gaps += [float(np.min(s[:, k - 1] - s[:, k])), float(np.min(st[:, k - 1] - st[:, k]))]
    return scores.numpy(), t2i, i2t, counts, min(gaps)


def write_expected(tag, kind, name, cfg, metrics, img, txt, tii, names, caps):
    scores, t2i, i2t, counts, gap = analyse(metrics, img, txt, tii)
    exp = os.path.join(OUT, "expected")
    os.makedirs(exp, exist_ok=True)
    doc = {"dataset": kind, "model": cfg["name"], "pretrained": f"{name}.safetensors", "task": "zeroshot_retrieval",
           "metrics": metrics, "language": "en", "hits": counts, "images": len(names), "captions": len(caps),
           "min_score_gap_at_k": gap, "recall_k": RECALL_K,
           "generator": f"make_retrieval_data.py: clip_benchmark {getattr(clip_benchmark, '__version__', '?')} "
                        f"(pip clip-benchmark 1.6.2) zeroshot_retrieval.evaluate(amp=False), torch {torch.__version__}, "
                        "open_clip 2.24.0, float64 model"}
    with open(os.path.join(exp, f"{tag}.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    if tag.count(".") > 1:  # the corrupt-image variant: metrics only
        return gap
    with mz.h5_create(os.path.join(exp, f"{tag}.h5")) as f:
        f.attrs["schema"] = "evabench-retrieval-parity/1"
        f.attrs["config"] = mg.config_json(cfg)
        f.attrs["generator"] = doc["generator"]
        for k, v in (("image_embeds", img), ("text_embeds", txt), ("scores", scores)):
            f.create_dataset(k, data=v.astype(np.float64), track_times=False)
        f.create_dataset("texts_image_index", data=tii.astype(np.int32), track_times=False)
        f.create_dataset("t2i_topk", data=t2i.astype(np.int32), track_times=False)
        f.create_dataset("i2t_topk", data=i2t.astype(np.int32), track_times=False)
    write_predictions(os.path.join(exp, f"{tag}.predictions.csv"), t2i, i2t, tii, len(names))
    return gap


def write_predictions(path, t2i, i2t, tii, n_images):
    """direction,query,target,top1..top10,hit1..hit10 (t2i: query = caption index, target = its image;
    i2t: query = image index, target = its caption indices joined by spaces)."""
    own = [[t for t in range(len(tii)) if tii[t] == i] for i in range(n_images)]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["direction", "query", "target"] + [f"top{j + 1}" for j in range(KMAX)] +
                   [f"hit{j + 1}" for j in range(KMAX)])
        for t in range(len(tii)):
            w.writerow(["t2i", t, int(tii[t])] + [int(v) for v in t2i[t]] + [int(v == tii[t]) for v in t2i[t]])
        for i in range(n_images):
            w.writerow(["i2t", i, " ".join(map(str, own[i]))] + [int(v) for v in i2t[i]] +
                       [int(tii[v] == i) for v in i2t[i]])


def main():
    assert locale.getpreferredencoding(False).upper() in ("UTF-8", "UTF8"), "run in a UTF-8 locale (Flickr reads the "\
        "annotation file in the locale's encoding)"
    coco, flickr = write_coco(), write_flickr()
    for name, family, seed in MODELS:
        model, cfg = load_model(name, family, seed)
        for kind, root in (("mscoco_captions", coco), ("flickr30k", flickr)):
            r = run(kind, root, model, cfg)
            gap = write_expected(f"{name}.{kind}", kind, name, cfg, *r)
            print(f"{name} {kind}: {len(r[4])} images, {len(r[5])} captions, min score gap at k {gap:.2e}: "
                  + " ".join(f"{k.replace('_retrieval_recall', '')}={v:.4f}" for k, v in r[0].items()))
        if name == "eva02":
            ann = write_coco_without(coco, CORRUPT_STEM)
            try:
                r = run("mscoco_captions", coco, model, cfg, ann)
            finally:
                os.unlink(ann)
            write_expected(f"eva02.mscoco_captions.without_{CORRUPT_STEM}", "mscoco_captions", name, cfg, *r)
            print(f"eva02 mscoco_captions without {CORRUPT_STEM}: {r[0]}")


if __name__ == "__main__":
    main()
