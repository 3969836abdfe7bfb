#!/usr/bin/env python3
"""make_long_words.py OUT.json: long single words tokenized by open_clip 2.24's SimpleTokenizer
(encode(), no SOT/EOT, no truncation), for the BPE test of tests/unit_tokenizer.c (the merge loop
on words far longer than any prompt). Deterministic (fixed seeds)."""
import json
import random
import sys

from open_clip.tokenizer import SimpleTokenizer


def main(out):
    tok = SimpleTokenizer()
    words = []
    rng = random.Random(1234)
    for n in (300, 1000, 3000, 6000):
        words.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n)))
    rng = random.Random(99)
    words.append("".join(rng.choice("aeiou") for _ in range(2500)))      # few distinct pairs
    words.append("a" * 4001)                                                 # one pair everywhere
    words.append("ab" * 1500 + "abc")
    words.append("photography" * 300)
    words.append("".join(rng.choice("абвгдежзиклмнопрст") for _ in range(1200)))  # multi-byte letters
    cases = [{"text": w, "ids": tok.encode(w)} for w in words]
    with open(out, "w") as f:
        json.dump(cases, f)


if __name__ == "__main__":
    main(sys.argv[1])
