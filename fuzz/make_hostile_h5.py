#!/usr/bin/env python3
"""make_hostile_h5.py OUTDIR: hand-made hostile HDF5 files for tests/cli_hostile_h5.sh, derived
from the committed tiny golden golden/tiny/eva02.h5 with h5py:

  fill_value.h5      a golden whose /inputs/pixel_values is chunked [1,3,9459,9459] with no chunk
                     written (reads as ~1 GB of fill value)
  fill_value_ok_shape.h5  the same with the right shape [1024,3,S,S] (config-valid, still unbacked)
  external.h5        /inputs/pixel_values stored in an external file (/etc/passwd)
  huge_act.h5        an activation declaring [65536,65536,4,4] floats, chunked, nothing stored
  soft_inputs.h5     /inputs is a soft link
"""
import json
import os
import sys

import h5py
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(here, "..", "golden", "tiny", "eva02.h5")


def copy_golden(dst, skip_inputs=False):
    with h5py.File(SRC, "r") as s, h5py.File(dst, "w") as d:
        for k, v in s.attrs.items():
            d.attrs[k] = v
        if not skip_inputs:
            s.copy("inputs", d)
        a = d.create_group("acts")
        # one small activation is enough for the reader
        s.copy("acts/image_features", a, name="image_features")


def main(out):
    os.makedirs(out, exist_ok=True)
    with h5py.File(SRC, "r") as s:
        S = json.loads(s.attrs["config"])["vision"]["image_size"]
    p = os.path.join(out, "fill_value.h5")
    copy_golden(p, skip_inputs=True)
    with h5py.File(p, "a") as d:
        d.create_dataset("inputs/pixel_values", shape=(1, 3, 9459, 9459), dtype="f4", chunks=(1, 3, 64, 64))
    p = os.path.join(out, "fill_value_ok_shape.h5")
    copy_golden(p, skip_inputs=True)
    with h5py.File(p, "a") as d:
        d.create_dataset("inputs/pixel_values", shape=(1024, 3, S, S), dtype="f4", chunks=(1, 3, S, S))
    p = os.path.join(out, "external.h5")
    copy_golden(p, skip_inputs=True)
    with h5py.File(p, "a") as d:
        d.create_dataset("inputs/pixel_values", shape=(1, 3, S, S), dtype="f4", external=[("/etc/passwd", 0, h5py.h5f.UNLIMITED)])
    p = os.path.join(out, "huge_act.h5")
    copy_golden(p)
    with h5py.File(p, "a") as d:
        d.create_dataset("acts/visual.trunk.blocks.0", shape=(65536, 65536, 4, 4), dtype="f4", chunks=(1, 64, 4, 4))
    p = os.path.join(out, "soft_inputs.h5")
    copy_golden(p, skip_inputs=True)
    with h5py.File(p, "a") as d:
        with h5py.File(SRC, "r") as s:
            s.copy("inputs", d, name="real_inputs")
        d["inputs"] = h5py.SoftLink("/real_inputs")


if __name__ == "__main__":
    main(sys.argv[1])
