#!/usr/bin/env python3
"""make_damaged_images.py OUTDIR: damaged PNG/JPEG files made from golden/parity/images, and
Pillow's decision on each (OUTDIR/expected.txt: "<file> accept|refuse <Pillow's message>").

The decision is what open_clip's pipeline sees: Image.open(f).convert("RGB") with Pillow's
defaults (ImageFile.LOAD_TRUNCATED_IMAGES = False). Damage: truncation at several points (header,
scan/IDAT data, before the end marker), bad entropy-coded (Huffman) data, bad CRCs in PNG chunks
before, inside and after the image data, corrupt zlib data, and a 528-byte JPEG that declares
9000x9000. Deterministic."""
import io
import os
import struct
import sys
import zlib

from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(here, "parity", "images")


def read(name):
    with open(os.path.join(SRC, name), "rb") as f:
        return f.read()


def jpeg_scan_start(d):
    """Offset of the first byte after the first SOS segment."""
    i = 2
    while i < len(d):
        assert d[i] == 0xFF
        m = d[i + 1]
        n = struct.unpack(">H", d[i + 2:i + 4])[0]
        if m == 0xDA:
            return i + 2 + n
        i += 2 + n
    raise ValueError("no SOS")


def corrupt_scan(d, start, count, step, xor):
    """XORs `count` bytes of entropy-coded data from `start`, never making or breaking a marker."""
    b = bytearray(d)
    i, done = start, 0
    while done < count and i < len(b) - 2:
        if b[i] != 0xFF and b[i - 1] != 0xFF and (b[i] ^ xor) != 0xFF:
            b[i] ^= xor
            done += 1
        i += step
    return bytes(b)


def png_chunks(d):
    out, i = [], 8
    while i + 8 <= len(d):
        n = struct.unpack(">I", d[i:i + 4])[0]
        out.append((d[i + 4:i + 8], i, n))
        i += 12 + n
    return out


def png_bad_crc(d, cid, which=0):
    """Flips the CRC of the `which`-th chunk of type cid."""
    k = [c for c in png_chunks(d) if c[0] == cid][which]
    b = bytearray(d)
    b[k[1] + 8 + k[2]] ^= 0x01
    return bytes(b)


def png_insert_before(d, cid, chunk_type, payload, bad_crc=False):
    k = [c for c in png_chunks(d) if c[0] == cid][0]
    crc = zlib.crc32(chunk_type + payload) ^ (1 if bad_crc else 0)
    ch = struct.pack(">I", len(payload)) + chunk_type + payload + struct.pack(">I", crc)
    return d[:k[1]] + ch + d[k[1]:]


def jpeg_9000(d_small):
    """A small JPEG whose SOF0 is patched to 9000x9000, cut to 528 bytes."""
    b = bytearray(d_small)
    i = 2
    while True:
        m, n = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
        if m in (0xC0, 0xC1, 0xC2):
            b[i + 5:i + 9] = struct.pack(">HH", 9000, 9000)
            break
        i += 2 + n
    return bytes(b[:528])


def cases():
    rgb = read("jpeg_rgb_500x375.jpg")
    prog = read("jpeg_progressive_375x500.jpg")
    grey = read("jpeg_grey_320x240.jpg")
    s = jpeg_scan_start(rgb)
    yield "jpeg_trunc_header.jpg", rgb[:s - 40]
    for frac in (0.1, 0.5, 0.9, 0.99):
        yield "jpeg_trunc_%02d.jpg" % int(frac * 100), rgb[:s + int((len(rgb) - s) * frac)]
    yield "jpeg_no_eoi.jpg", rgb[:-2]
    yield "jpeg_half_eoi.jpg", rgb[:-1]
    yield "jpeg_trailing_garbage.jpg", rgb + b"garbage after the end" * 10
    yield "jpeg_prog_trunc_30.jpg", prog[:int(len(prog) * 0.3)]
    yield "jpeg_prog_trunc_80.jpg", prog[:int(len(prog) * 0.8)]
    yield "jpeg_grey_trunc_50.jpg", grey[:len(grey) // 2]
    yield "jpeg_bad_huffman_few.jpg", corrupt_scan(rgb, s + 1000, 8, 997, 0x5A)
    yield "jpeg_bad_huffman_many.jpg", corrupt_scan(rgb, s + 100, 400, 61, 0xA5)
    yield "jpeg_bad_huffman_prog.jpg", corrupt_scan(prog, jpeg_scan_start(prog) + 50, 200, 37, 0x33)
    small = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 30, 200)).save(small, "JPEG", quality=90)
    yield "jpeg_9000x9000_528b.jpg", jpeg_9000(small.getvalue())

    prgb = read("png_rgb_224x224.png")
    pal = read("png_palette_trns_200x120.png")
    inter = read("png_interlaced_123x77.png")
    idat = [c for c in png_chunks(prgb) if c[0] == b"IDAT"][0]
    yield "png_trunc_ihdr.png", prgb[:20]
    yield "png_trunc_idat_10.png", prgb[:idat[1] + 8 + idat[2] // 10]
    yield "png_trunc_idat_90.png", prgb[:idat[1] + 8 + idat[2] * 9 // 10]
    yield "png_trunc_before_iend.png", prgb[:-12]
    yield "png_trunc_iend_crc.png", prgb[:-3]
    yield "png_interlaced_trunc_60.png", inter[:int(len(inter) * 0.6)]
    yield "png_badcrc_ihdr.png", png_bad_crc(prgb, b"IHDR")
    yield "png_badcrc_plte.png", png_bad_crc(pal, b"PLTE")
    yield "png_badcrc_trns.png", png_bad_crc(pal, b"tRNS")
    yield "png_badcrc_idat.png", png_bad_crc(prgb, b"IDAT")
    yield "png_badcrc_iend.png", png_bad_crc(prgb, b"IEND")
    yield "png_badcrc_text_before.png", png_insert_before(prgb, b"IDAT", b"tEXt", b"Comment\0hello", True)
    yield "png_badcrc_text_after.png", png_insert_before(prgb, b"IEND", b"tEXt", b"Comment\0hello", True)
    yield "png_text_before_ok.png", png_insert_before(prgb, b"IDAT", b"tEXt", b"Comment\0hello", False)
    b = bytearray(prgb)
    b[idat[1] + 8 + idat[2] // 2] ^= 0xFF
    yield "png_bad_zlib_middle.png", bytes(b)
    b = bytearray(prgb)
    b[idat[1] + 8 + idat[2] - 1] ^= 0x01  # last byte of the zlib stream: its Adler-32
    yield "png_bad_adler.png", bytes(b)


def pillow_decision(path):
    try:
        with Image.open(path) as im:
            im.convert("RGB")
        return "accept", ""
    except Exception as e:  # noqa: BLE001 - every refusal counts, whatever its class
        return "refuse", "%s: %s" % (type(e).__name__, str(e).replace("\n", " "))


def main(out):
    os.makedirs(out, exist_ok=True)
    lines = []
    for name, data in cases():
        p = os.path.join(out, name)
        with open(p, "wb") as f:
            f.write(data)
        d, msg = pillow_decision(p)
        lines.append("%s %s %s" % (name, d, msg))
    with open(os.path.join(out, "expected.txt"), "w") as f:
        f.write("# file decision (Pillow %s: Image.open(f).convert('RGB')) message\n" % Image.__version__)
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
