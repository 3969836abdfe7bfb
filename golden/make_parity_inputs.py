#!/usr/bin/env python3
"""make_parity_inputs.py: parity data for the C tokenizer and image preprocessing, made
by upstream code only (open_clip 2.24's tokenizer with ftfy, open_clip's eval transform on PIL).

  golden/.venv/bin/python golden/make_parity_inputs.py [--tokens] [--images]   (default: both)

Writes, under golden/parity/:
  tokens.h5   /imagenet : the 80,000 ImageNet prompts (IMAGENET_CLASSNAMES x
                          OPENAI_IMAGENET_TEMPLATES from open_clip's zero_shot_metadata, class-major)
              /hard     : a corpus of hard strings (scripts, emoji, entities, numbers, contractions,
                          odd whitespace, control characters, invalid UTF-8, overlong, and seeded
                          random mixtures of all of these)
              /mojibake : corpus strings on which ftfy's fix_encoding changes the text (outside
                          what the C tokenizer covers; stored to measure, not required to match)
      each group: text_bytes uint8 [B] + text_offsets int64 [n+1] (the UTF-8 bytes given to the
      C tokenizer; Python receives bytes.decode('utf-8', 'surrogateescape') as for a command-line
      argument), ids int32 [M] + id_offsets int64 [n+1] (open_clip tokenize(text)[0], context 77,
      trailing zeros dropped).
  images/*.png|jpg  the test images (seeded patterns written by PIL, or raw PNG chunks where PIL
              cannot write the mode)
  expected/<image>.s<S>.png  the uint8 RGB crop of open_clip image_transform(S, is_train=False)
              (its PIL part: Resize, CenterCrop, convert RGB), S in 224, 336, 448
  images.h5   /lut float32 [3,256]: open_clip's ToTensor+Normalize of each 8-bit value, so that
              open_clip's float tensor == lut[c][crop] (asserted for every image and size);
              /names; root attributes record the versions (Pillow included).
"""
import argparse
import io
import os
import random
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "parity")


def versions():
    import PIL
    import ftfy
    import open_clip
    import open_clip.version
    import regex
    import torch
    import torchvision
    return {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__,
            "open_clip": open_clip.version.__version__, "ftfy": ftfy.__version__, "regex": regex.__version__,
            "Pillow": PIL.__version__}


# ------------------------------------------------------------------------------ tokens ----------

def hard_corpus():
    s = []
    # ASCII basics, contractions, numbers, punctuation runs
    s += ["a diagram", "a dog", "a cat", "a photo of a cat.", "A photo of a TENCH.", "itap of a great white shark.",
          "don't stop", "hello   world\n", "a photo of a 1234 cat!!", " ".join(["word"] * 100),
          "", " ", "\n\t \r\n", "I'M HERE", "they'RE we've I'll he'd she's it'S 'tis o'clock",
          "''s '''t x's'", "3.14159 1,000,000 -42 +7 1e10 0x1F 2024-01-31 12:30:45",
          "!!! ??? ... --- ___ *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}} <<< >>> ~~~",
          "email@example.com https://example.org/a/b?c=d&e=f#g", "C++ C# F# .NET node.js",
          "<start_of_text>", "<end_of_text>", "a <start_of_text> b <end_of_text> c", "<START_OF_TEXT>",
          "<start_of_text><end_of_text>", "x<start_of_text>y", "<start of text>",
          "snake_case camelCase PascalCase kebab-case SCREAMING_CASE"]
    # HTML entities: ftfy's own, Python's html.unescape (no ';', numeric, invalid, nested)
    s += ["Broken text&hellip; it&#x2019;s ﬂubberiﬁc!", "&amp; &lt; &gt; &quot; &apos; &nbsp;x",
          "&amp;amp; &amp;lt; &amp;amp;amp;gt;", "fish &amp chips", "&copy 2024 &reg &trade;",
          "&NTILDE; &Eacute; &eacute; &EACUTE;", "&notit; &notin; &not", "&#65;&#66;&#x43;&#X44;",
          "&#0; &#128; &#x80; &#150; &#xD800; &#1114112; &#99999999999999999999;", "&#65 &#x41 &#",
          "&unknownentity; &;&&;& &#; &#x; &#xZZ;", "<b>&amp;</b> &amp;", "a < b &amp; c",
          "line1 &amp;\nline2 <tag>\nline3 &amp;", "&AMP; &Amp; &LT &lt", "&frac12;&frac14; &sup2;",
          "&Sigma;&sigma;&sigmaf; &alpha;&beta;", "&#x1F600; &#128512;", "&lt;start_of_text&gt;",
          "&NotNestedGreaterGreater; &nGt; &bne;", "&ampx &ltfoo &copyright", "&" + "a" * 40 + ";"]
    # Unicode scripts
    s += ["Ελληνικά: ΟΔΟΣ ΟΔΥΣΣΕΥΣ Σ ΣΑ ΑΣ. ΑΣ'Σ", "Русский текст: ПРИВЕТ, мир!", "中文测试：你好，世界！",
          "日本語のテキスト、カタカナ、ﾊﾝｶｸ", "한국어 텍스트", "العربية: مرحبا بالعالم ١٢٣", "עברית: שלום עולם",
          "हिन्दी: नमस्ते दुनिया १२३", "ไทย: สวัสดีชาวโลก", "Tiếng Việt: Xin chào thế giới", "ქართული ენა",
          "Հայերեն", "Ǆemal ǅemal ǆemal", "İstanbul ISTANBUL ıi", "ß ẞ STRASSE Straße", "ﬁ ﬂ ﬀ ﬃ ﬄ ﬅ ﬆ Ĳ ĳ ŉ",
          "ＬＯＵＤ　ＮＯＩＳＥＳ ｆｕｌｌ１２３！", "ｶﾀｶﾅ ﾞﾟ ￠￡￥", "Å Å Å é é ñ ñ", "e\u0301 a\u0300 o\u0308",
          "ǅ ǈ ǋ ǲ ᾈ ᾼ", "ſtart 'ſ <ſtart_of_text> Kelvin K", "ͅ a\u0345b ᾳ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝 ①②③ ⅰⅱⅲ Ⅻ",
          "½ ¾ ² ³ ¹ ⁴ ₅ ௰ ൰ 𐄇", "١٢٣ ٤٥٦ ۱۲۳ ０１２", "Ω Ω ℃ ℉ Å ª º", "ŉ ʼn ʼ"]
    # emoji
    s += ["I ❤️ NY 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇺🇸🇫🇷 🏳️‍🌈", "emoji🙂inside🙃words", "✔ No problems ☃ ★☆",
          "🐶 dog 🐱 cat 🐟 fish", "#️⃣ 1️⃣ ©️ ®️ ™️"]
    # quotes, dashes, whitespace, controls, line breaks
    s += ["“curly” ‘quotes’ „low‟ ‛rev’ ʼmodifier", "en–dash em—dash minus−sign ‐hyphen", "ellipsis… bullet•",
          "tab\tsep\vvt\fff\rcr\r\nCRLF", "nbsp\u00a0x thin\u2009y ideo\u3000z zwsp\u200bq zwj\u200dr",
          "ls\u2028ps\u2029nel\u0085end", "c1 \u0080\u0081\u0091\u0092\u0093\u0094\u009f", "ctl\x00\x01\x07\x08\x0b\x0e\x1b\x1f\x7fend",
          "fs\x1cgs\x1drs\x1eus\x1fend", "\x1b[31mred\x1b[0m \x1b[1;32mbold\x1b[m \x1b[۱۲m", "bom\ufeffx \u206a \ufff9\ufffc",
          "  leading and trailing  ", "\u3000\u3000wide space\u3000", "\u2000\u2001\u2002\u2003\u200a|", "\u180e mvs",
          "soft\u00adhyphen", "lrm\u200erlm\u200f", "replacement \ufffd char", "private \ue000\uf8ff",
          "noncharacter \ufdd0 \uffff", "a\u0300\u0301\u0302\u0303\u0304\u0305\u0306", "\u0345\u0345", "1\u0345 !\u0345!"]
    # overlong
    s += ["a photo of " * 40, "supercalifragilisticexpialidocious" * 5, "x" * 500, "1" * 100,
          "🙂" * 80, "Ελληνικά " * 30, "&amp;" * 60, " ".join(str(i) for i in range(200))]
    return s


def raw_bytes_corpus():
    """Strings given as raw bytes (invalid UTF-8), as a command line can carry them."""
    return [b"invalid \xff byte", b"\xc3\x28 bad pair", b"trunc \xe2\x82", b"\xe2\x82\xac euro ok",
            b"overlong \xc0\xaf \xe0\x80\xaf", b"surrogate \xed\xa0\x80 x", b"\xf4\x90\x80\x80 too big",
            b"\x80\x80 lone continuation", b"mixed \xe4\xbd\xa0\xe5\xa5 tail", b"\xf0\x9f\x98 cut emoji",
            b"\xfe\xfe\xff\xff", b"ok \xce\xa3\xff\xce\xa3"]


def random_corpus(n, seed=1234):
    rng = random.Random(seed)
    pieces = ["a", "b", "Z", "cat", "DOG", "'s", "'t", "'re", "'ll", "'", "''", "&", "&amp;", "&lt;", "&gt", "&#65;",
              "&#x263a;", "&eacute", "&hellip;", "&nbsp;", "&Sigma;", "<", ">", "<start_of_text>", "<end_of_text>",
              " ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u0085", "\x1c", "\x0b", "\x00",
              "0", "7", "42", "３", "٣", "½", "Ⅳ", "²", "é", "e\u0301", "Σ", "ΑΣ", "σ", "ς", "İ", "ı", "ſ", "K", "ß",
              "ﬁ", "ﬃ", "Ĳ", "ǅ", "Ａ", "ｂ", "！", "ﾊ", "“", "”", "‘", "’", "ʼ", "–", "…", "😀", "👍🏽", "❤️", "🇫🇷",
              "中", "文", "日本", "한", "ру", "ПРИВЕТ", "ع", "ש", "नम", "ไทย", "\u0345", "\u0300", "\u200b", "\ufeff",
              "\x80", "\x92", "\x9f", "\x1b[1m", "!", "?", ".", ",", "-", "_", "$", "%", "(", ")", "@", "#", "/", "\\",
              "\u2160", "\u24b6", "\u1e9e", "\u212b", "\u2126", "𝔘", "\U0001d7d8", "\ufdd0", "\ufffd"]
    out = []
    for _ in range(n):
        k = rng.randint(1, 24)
        out.append("".join(rng.choice(pieces) for _ in range(k)))
    return out


def write_group(f, name, texts_bytes, ids_rows):
    g = f.create_group(name)
    blob = b"".join(texts_bytes)
    offs = np.zeros(len(texts_bytes) + 1, np.int64)
    offs[1:] = np.cumsum([len(b) for b in texts_bytes])
    ids = np.concatenate([np.asarray(r, np.int32) for r in ids_rows]) if ids_rows else np.zeros(0, np.int32)
    ioffs = np.zeros(len(ids_rows) + 1, np.int64)
    ioffs[1:] = np.cumsum([len(r) for r in ids_rows])
    kw = dict(compression="gzip", compression_opts=9, shuffle=True)
    g.create_dataset("text_bytes", data=np.frombuffer(blob, np.uint8), **kw)
    g.create_dataset("text_offsets", data=offs, **kw)
    g.create_dataset("ids", data=ids, **kw)
    g.create_dataset("id_offsets", data=ioffs, **kw)
    g.attrs["count"] = len(texts_bytes)


def make_tokens():
    import ftfy
    import open_clip
    from open_clip import zero_shot_metadata as zsm
    tok = open_clip.get_tokenizer("EVA02-B-16")
    assert isinstance(tok, open_clip.tokenizer.SimpleTokenizer) and tok.context_length == 77

    def ids_of(texts):
        rows = []
        for i in range(0, len(texts), 2000):
            t = tok(texts[i:i + 2000]).numpy()
            for r in t:
                nz = np.nonzero(r)[0]
                rows.append(r[:nz[-1] + 1].astype(np.int32))
        return rows

    prompts = [t(c) for c in zsm.IMAGENET_CLASSNAMES for t in zsm.OPENAI_IMAGENET_TEMPLATES]
    assert len(prompts) == 80000
    hard_b = [x.encode("utf-8", "surrogatepass") for x in hard_corpus()] + raw_bytes_corpus()
    hard_b += [x.encode("utf-8") for x in random_corpus(3000)]
    hard, moji = [], []
    for b in hard_b:
        s = b.decode("utf-8", "surrogateescape")
        (moji if ftfy.fix_text(s) != ftfy.fix_text(s, fix_encoding=False) else hard).append((b, s))
    os.makedirs(OUT, exist_ok=True)
    with h5py.File(os.path.join(OUT, "tokens.h5"), "w") as f:
        for k, v in versions().items():
            f.attrs[k] = str(v)
        f.attrs["tokenizer"] = "open_clip.get_tokenizer('EVA02-B-16'), context_length 77"
        write_group(f, "imagenet", [p.encode() for p in prompts], ids_of(prompts))
        write_group(f, "hard", [b for b, _ in hard], ids_of([s for _, s in hard]))
        write_group(f, "mojibake", [b for b, _ in moji], ids_of([s for _, s in moji]))
    print("tokens.h5: %d prompts, %d hard strings, %d mojibake strings set aside" % (len(prompts), len(hard), len(moji)))


# ------------------------------------------------------------------------------ images ----------

SIZES = (224, 336, 448)


def _pattern(w, h, seed, smooth=True):
    """A seeded photo-like test pattern: gradients, sinusoids, a few shapes, mild noise (uint8 [h,w,3])."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.5, 6, 2).tolist() + [rng.uniform(0, 6.28)]
        img[..., c] = 128 + 90 * np.sin(2 * np.pi * (fx * x / w + fy * y / h) + ph) + 30 * (x / w - y / h)
    for _ in range(6):  # hard edges: rectangles and discs
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, max(3, min(w, h) / 3))
        col = rng.uniform(0, 255, 3)
        if rng.random() < 0.5:
            m = (np.abs(x - cx) < r) & (np.abs(y - cy) < r * 0.6)
        else:
            m = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[m] = col
    img += rng.normal(0, 0.0 if smooth else 5.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _png_raw(path, w, h, bit_depth, color_type, rows, plte=None, trns=None, interlace=0):
    """Writes a PNG from raw scanlines (filter 0) for the modes PIL cannot write (LA 16-bit,
    palette with a short PLTE and out-of-range indexes)."""
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, interlace))
    if plte is not None:
        out += chunk(b"PLTE", plte)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    out += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


def make_test_images(d):
    """Writes the test images into d; returns their file names. Every mode, format and size class."""
    from PIL import Image
    names = []

    def save(im, name, **kw):
        im.save(os.path.join(d, name), **kw)
        names.append(name)

    rgb = lambda w, h, s, smooth=True: Image.fromarray(_pattern(w, h, s, smooth), "RGB")
    # JPEG: baseline 4:2:0, progressive, 4:4:4, greyscale, CMYK (Adobe, inverted as Pillow writes it)
    save(rgb(500, 375, 1, smooth=False), "jpeg_rgb_500x375.jpg", quality=90)
    save(rgb(375, 500, 2), "jpeg_progressive_375x500.jpg", quality=85, progressive=True)
    save(rgb(333, 501, 3), "jpeg_444_333x501.jpg", quality=95, subsampling=0)
    save(rgb(320, 240, 4).convert("L"), "jpeg_grey_320x240.jpg", quality=90)
    save(rgb(300, 200, 5).convert("CMYK"), "jpeg_cmyk_300x200.jpg", quality=90)
    # PNG 8-bit: RGB (exactly 224 square: untouched at 224), RGBA, LA, L, P (+tRNS), interlaced
    save(rgb(224, 224, 6), "png_rgb_224x224.png")
    a = _pattern(260, 180, 7)
    alpha = np.clip(np.linspace(-60, 320, 260)[None, :] + np.zeros((180, 1)), 0, 255).astype(np.uint8)
    save(Image.fromarray(np.dstack([a, alpha]), "RGBA"), "png_rgba_260x180.png")
    la = np.dstack([_pattern(150, 200, 8)[..., 0], np.clip(np.linspace(320, -40, 200)[:, None] + np.zeros((1, 150)), 0, 255).astype(np.uint8)])
    save(Image.fromarray(la, "LA"), "png_la_150x200.png")
    save(rgb(97, 61, 9).convert("L"), "png_grey_97x61.png")
    p = rgb(200, 120, 10).quantize(colors=200)
    save(p, "png_palette_trns_200x120.png", transparency=bytes(range(0, 250, 5)))
    save(rgb(97, 61, 11).quantize(colors=16), "png_palette4_97x61.png", bits=4)
    save(rgb(123, 77, 12), "png_interlaced_123x77.png", interlace=1)
    save(rgb(7, 5, 13), "png_tiny_7x5.png")
    save(rgb(1000, 50, 14), "png_wide_1000x50.png")
    save(rgb(501, 333, 15), "png_odd_501x333.png")
    # low bit depths: 1-bit (mode 1), 2- and 4-bit grey (L;2, L;4)
    g = _pattern(64, 48, 16)[..., 1]
    save(Image.fromarray(g).convert("1"), "png_bilevel_64x48.png")
    _png_raw(os.path.join(d, "png_grey2_40x30.png"), 40, 30, 2, 0,
             [np.packbits(np.unpackbits((_pattern(40, 30, 17)[y, :, 0] >> 6)[:, None], axis=1)[:, 6:].reshape(-1)).tobytes() for y in range(30)])
    names.append("png_grey2_40x30.png")
    save(rgb(41, 29, 18).convert("L").quantize(16).convert("L"), "png_grey4_41x29.png", bits=4)
    # 16-bit: grey (Pillow mode I), RGB, RGBA, grey+alpha (LA;16B -> RGBA)
    g16 = (_pattern(120, 90, 19)[..., 0].astype(np.uint16) * 257)
    g16[:, :40] //= 300  # a band of values <= 255, where I -> RGB does not clip everything to white
    _png_raw(os.path.join(d, "png_grey16_120x90.png"), 120, 90, 16, 0, [g16[y].astype(">u2").tobytes() for y in range(90)])
    names.append("png_grey16_120x90.png")
    c16 = _pattern(100, 80, 20).astype(np.uint16) * 257 + np.random.default_rng(21).integers(0, 257, (80, 100, 3)).astype(np.uint16)
    _png_raw(os.path.join(d, "png_rgb16_100x80.png"), 100, 80, 16, 2, [c16[y].astype(">u2").tobytes() for y in range(80)])
    names.append("png_rgb16_100x80.png")
    a16 = np.dstack([c16, (np.linspace(0, 65535, 100)[None, :] + np.zeros((80, 1))).astype(np.uint16)])
    _png_raw(os.path.join(d, "png_rgba16_100x80.png"), 100, 80, 16, 6, [a16[y].astype(">u2").tobytes() for y in range(80)])
    names.append("png_rgba16_100x80.png")
    la16 = np.dstack([c16[..., 0], a16[..., 3][:, ::-1]])
    _png_raw(os.path.join(d, "png_la16_100x80.png"), 100, 80, 16, 4, [la16[y].astype(">u2").tobytes() for y in range(80)])
    names.append("png_la16_100x80.png")
    # palette with a 4-entry PLTE, indexes beyond it (Pillow's palette ramp), Adam7 interlaced
    idx = (_pattern(60, 40, 22)[..., 2] // 40).astype(np.uint8) * 37
    _png_raw(os.path.join(d, "png_palette_short_60x40.png"), 60, 40, 8, 3, [idx[y].tobytes() for y in range(40)],
             plte=bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 250, 250, 10]))
    names.append("png_palette_short_60x40.png")
    return names


def make_images():
    import PIL
    import torch
    from PIL import Image
    from open_clip.transform import image_transform
    d = os.path.join(OUT, "images")
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    names = make_test_images(d)
    ed = os.path.join(OUT, "expected")
    os.makedirs(ed, exist_ok=True)
    for f in os.listdir(ed):
        os.remove(os.path.join(ed, f))
    # ToTensor + Normalize of every 8-bit value, computed by open_clip's own transform: a 256x1
    # RGB image holding 0..255 in each channel, through the last two steps of the pipeline.
    tf224 = image_transform(224, is_train=False)
    to_tensor_norm = tf224.transforms[-2:]
    ramp = Image.fromarray(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2), "RGB")
    lut = ramp
    for t in to_tensor_norm:
        lut = t(lut)
    lut = lut.numpy()[:, 0, :].astype(np.float32)  # [3, 256]
    rows = []
    for S in SIZES:
        tf = image_transform(S, is_train=False)
        pil_part, tail = tf.transforms[:-2], tf.transforms[-2:]
        for name in names:
            with Image.open(os.path.join(d, name)) as im:
                mode = im.mode
                full = tf(im).numpy()
            with Image.open(os.path.join(d, name)) as im:
                crop = im
                for t in pil_part:
                    crop = t(crop)
            u8 = np.asarray(crop, dtype=np.uint8)
            assert u8.shape == (S, S, 3), (name, u8.shape)
            # the stored uint8 crop + the LUT must reproduce open_clip's float tensor exactly
            rec = np.stack([lut[c][u8[..., c]] for c in range(3)])
            assert np.array_equal(rec, full), name
            Image.fromarray(u8, "RGB").save(os.path.join(ed, "%s.s%d.png" % (name, S)), optimize=True)
            rows.append((name, mode, S))
    with h5py.File(os.path.join(OUT, "images.h5"), "w") as f:
        for k, v in versions().items():
            f.attrs[k] = str(v)
        f.attrs["transform"] = "open_clip.transform.image_transform(S, is_train=False), S in 224/336/448"
        f.attrs["note"] = ("expected/<image>.s<S>.png: the uint8 RGB crop after Resize/CenterCrop/convert; "
                           "/lut[c][v]: ToTensor+Normalize of value v in channel c; open_clip's tensor "
                           "equals lut[c][crop[..., c]] exactly (asserted when generated)")
        f.create_dataset("lut", data=lut)
        f.create_dataset("names", data=np.array([n.encode() for n in names]))
        f.create_dataset("modes", data=np.array([m.encode() for _, m, _ in rows[:len(names)]]))
    print("images: %d test images (%s), crops at %s; Pillow %s" % (len(names), ", ".join(sorted(set(m for _, m, _ in rows))),
                                                                 SIZES, PIL.__version__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", action="store_true")
    ap.add_argument("--images", action="store_true")
    a = ap.parse_args()
    both = not a.tokens and not a.images
    print("versions:", versions())
    if a.tokens or both:
        make_tokens()
    if a.images or both:
        make_images()


if __name__ == "__main__":
    main()
