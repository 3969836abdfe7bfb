"""ckpt_formats.py: reading the published EVA-CLIP checkpoint formats tensor by tensor.

What it owns (used by convert_checkpoint.py, make_golden.py and the tests; no torch needed):
  * TorchZipReader: a PyTorch zip-format pickle (`torch.save` since 1.6: `<prefix>/data.pkl` plus
    one stored, uncompressed record per storage) unpickled by a restricted Unpickler whose
    persistent_load returns *lazy* storage references; a tensor's bytes are read from the file
    with os.pread only when asked for, in bounded chunks. Only state-dict classes are rebuilt
    (OrderedDict, the torch tensor/parameter rebuild functions, the storage classes); any other
    class becomes an inert placeholder (nothing from the file is executed), which the caller
    drops.
  * the transformers layout of the BAAI EVA-CLIP-8B/18B repos (`vision_model.*`, `text_model.*`,
    `visual_projection`, `text_projection`, `logit_scale`; q/k/v split; sharded with an
    `*.index.json`), mapped back to the official EVA-CLIP names: `hf_to_official()`;
  * the recognition of vision-only EVA pre-training weights (`EVA_8B_psz14.bin`, ...) by content.

A tensor source is a `Src`: dtype (safetensors name), shape, and `chunks()` yielding its bytes in
row-major order, at most CHUNK bytes at a time. An output tensor is a `Out`: a name, a dtype, a
shape and a list of sources whose bytes are concatenated (q, k and v into one qkv), or a
transposition of one 2-D source. Peak memory is one chunk, except for the few tensors that must be
transposed or gathered from a strided view (the text projection: E x W values).
"""
import json
import os
import pickle
import re
import struct
import sys
import zipfile
from collections import OrderedDict

CHUNK = 16 << 20  # bytes read and written at a time

# torch storage class name -> (safetensors dtype, bytes per element)
STORAGE_DTYPES = {
    "FloatStorage": ("F32", 4), "HalfStorage": ("F16", 2), "BFloat16Storage": ("BF16", 2),
    "DoubleStorage": ("F64", 8), "LongStorage": ("I64", 8), "IntStorage": ("I32", 4),
    "ShortStorage": ("I16", 2), "CharStorage": ("I8", 1), "ByteStorage": ("U8", 1),
    "BoolStorage": ("BOOL", 1),
}
ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
            "U8": 1, "BOOL": 1}
FLOAT_DTYPES = ("F32", "F16", "BF16")


class FormatError(Exception):
    """Bad input: the message names the file and what is wrong (exit status 2)."""


# ---------------------------------------------------------------------------------------------
# Tensor sources.

class Src:
    """A tensor's bytes somewhere: dtype, shape, chunks()."""
    dtype = None
    shape = ()

    @property
    def numel(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def nbytes(self):
        return self.numel * ITEMSIZE[self.dtype]

    def chunks(self):
        raise NotImplementedError

    def read_all(self):
        return b"".join(self.chunks())


class FileRange(Src):
    """Contiguous bytes [off, off + nbytes) of a file."""

    def __init__(self, path, off, dtype, shape):
        self.path, self.off, self.dtype, self.shape = path, off, dtype, tuple(shape)

    def chunks(self):
        fd = os.open(self.path, os.O_RDONLY)
        try:
            pos, end = self.off, self.off + self.nbytes
            while pos < end:
                n = min(CHUNK, end - pos)
                b = os.pread(fd, n, pos)
                if len(b) != n:
                    raise FormatError(f"{self.path}: file ends inside tensor data (offset {pos})")
                yield b
                pos += n
        finally:
            os.close(fd)


class Strided(Src):
    """A non-contiguous view of a storage record (gathered with numpy; rare in state dicts)."""

    def __init__(self, base, offset, shape, stride, dtype):
        self.base, self.offset, self.shape, self.stride, self.dtype = base, offset, tuple(shape), tuple(stride), dtype

    def chunks(self):
        import numpy as np
        it = ITEMSIZE[self.dtype]
        if self.numel == 0:
            return
        span = self.offset + 1 + sum((s - 1) * st for s, st in zip(self.shape, self.stride))
        raw = FileRange(self.base.path, self.base.off, self.dtype, (span,)).read_all()
        a = np.frombuffer(raw, dtype=np.dtype(f"V{it}"))
        v = np.lib.stride_tricks.as_strided(a[self.offset:], shape=self.shape,
                                            strides=[s * it for s in self.stride])
        yield np.ascontiguousarray(v).tobytes()


class Reshaped(Src):
    """Same bytes, another shape (class/position embeddings)."""

    def __init__(self, src, shape):
        self.src, self.dtype, self.shape = src, src.dtype, tuple(shape)
        assert self.numel == src.numel

    def chunks(self):
        return self.src.chunks()


class Transposed(Src):
    """The transpose of a 2-D source (text_projection [E,W] -> [W,E]); held in memory."""

    def __init__(self, src):
        assert len(src.shape) == 2
        self.src, self.dtype, self.shape = src, src.dtype, (src.shape[1], src.shape[0])

    def chunks(self):
        import numpy as np
        it = ITEMSIZE[self.dtype]
        a = np.frombuffer(self.src.read_all(), dtype=np.dtype(f"V{it}")).reshape(self.src.shape)
        yield np.ascontiguousarray(a.T).tobytes()


class Concat(Src):
    """Sources concatenated along dim 0 (q, k, v -> qkv): their bytes one after the other."""

    def __init__(self, srcs):
        first = srcs[0]
        for s in srcs[1:]:
            if s.dtype != first.dtype or tuple(s.shape[1:]) != tuple(first.shape[1:]):
                raise FormatError("cannot concatenate tensors of different dtype or trailing shape")
        self.srcs, self.dtype = srcs, first.dtype
        self.shape = (sum(s.shape[0] for s in srcs),) + tuple(first.shape[1:])

    def chunks(self):
        for s in self.srcs:
            yield from s.chunks()


# ---------------------------------------------------------------------------------------------
# PyTorch zip-format pickles, lazily.

class _Opaque:
    """Stands in for any class a checkpoint pickles besides tensors (argparse.Namespace, ...)."""

    def __init__(self, *a, **k):
        pass

    def __setstate__(self, state):
        pass

    def __call__(self, *a, **k):
        return _Opaque()


def _opaque_class(module, name):
    return type(f"opaque:{module}.{name}", (_Opaque,), {})


class _StorageType:
    def __init__(self, name):
        self.name = name


class _Storage:
    def __init__(self, reader, key, dtype):
        self.reader, self.key, self.dtype = reader, key, dtype


class LazyTensor(Src):
    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset = storage, offset
        self.shape, self.stride, self.dtype = tuple(shape), tuple(stride), storage.dtype

    def contiguous(self):
        exp, acc = [], 1
        for s in reversed(self.shape):
            exp.insert(0, acc)
            acc *= s
        return all(st == e for s, st, e in zip(self.shape, self.stride, exp) if s > 1)

    def _record(self):
        return self.storage.reader.record(self.storage.key, self.dtype)

    def chunks(self):
        it = ITEMSIZE[self.dtype]
        rec = self._record()
        if self.contiguous():
            return FileRange(rec.path, rec.off + self.offset * it, self.dtype, self.shape).chunks()
        return Strided(rec, self.offset, self.shape, self.stride, self.dtype).chunks()


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    return LazyTensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    return func(*args)


class _LazyUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Tensor"): _Opaque, ("torch.nn.parameter", "Parameter"): _Opaque,
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    }

    def __init__(self, f, reader):
        super().__init__(f)
        self.reader = reader
        self.opaque = set()

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        self.opaque.add(f"{module}.{name}")
        return _opaque_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise FormatError(f"{self.reader.path}: unknown persistent id {pid!r:.80}")
        st = pid[1]
        if not isinstance(st, _StorageType):
            raise FormatError(f"{self.reader.path}: storage of unsupported type {st!r:.80}")
        return _Storage(self.reader, str(pid[2]), STORAGE_DTYPES[st.name][0])


class TorchZipReader:
    """The object pickled in a torch.save zip file, tensors as LazyTensor."""

    def __init__(self, path):
        self.path = path
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise FormatError(f"{path}: not a PyTorch zip-format checkpoint ({e})") from None
        pkl = [n for n in self.zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise FormatError(f"{path}: zip file without exactly one <prefix>/data.pkl: not a torch.save file")
        self.prefix = pkl[0][: -len("data.pkl")]
        self._records = {}
        with self.zf.open(pkl[0]) as f:
            up = _LazyUnpickler(f, self)
            try:
                self.obj = up.load()
            except FormatError:
                raise
            except Exception as e:  # noqa: BLE001 - a malformed pickle is bad input
                raise FormatError(f"{path}: cannot unpickle data.pkl: {type(e).__name__}: {e}") from None
        self.opaque = sorted(up.opaque)

    def record(self, key, dtype):
        """FileRange over the whole storage record `data/<key>` (must be stored, not deflated)."""
        if key in self._records:
            return self._records[key]
        name = f"{self.prefix}data/{key}"
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise FormatError(f"{self.path}: storage record {name} is missing") from None
        if info.compress_type != zipfile.ZIP_STORED:
            raise FormatError(f"{self.path}: storage record {name} is compressed; torch.save never does that")
        with open(self.path, "rb") as f:
            f.seek(info.header_offset)
            hdr = f.read(30)
        if len(hdr) != 30 or hdr[:4] != b"PK\x03\x04":
            raise FormatError(f"{self.path}: bad local header for {name}")
        nlen, xlen = struct.unpack("<HH", hdr[26:30])
        off = info.header_offset + 30 + nlen + xlen
        it = ITEMSIZE[dtype]
        if info.file_size % it:
            raise FormatError(f"{self.path}: storage record {name} is not a whole number of {dtype} values")
        rec = FileRange(self.path, off, dtype, (info.file_size // it,))
        self._records[key] = rec
        return rec


def check_in_bounds(name, t):
    """A LazyTensor's view must lie inside its storage record."""
    if not isinstance(t, LazyTensor):
        return
    rec = t._record()
    if t.numel == 0:
        return
    last = t.offset + sum((s - 1) * st for s, st in zip(t.shape, t.stride))
    if t.offset < 0 or any(st < 0 for st in t.stride) or last >= rec.shape[0]:
        raise FormatError(f"{t.storage.reader.path}: tensor {name} reaches outside its storage record")


def is_torch_zip(path):
    return zipfile.is_zipfile(path)


# ---------------------------------------------------------------------------------------------
# safetensors: reading (shards) and a streaming writer.

def read_safetensors_header(path):
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise FormatError(f"{path}: too short for a safetensors file")
        n = struct.unpack("<Q", raw)[0]
        size = os.fstat(f.fileno()).st_size
        if n > min(size - 8, 100_000_000):
            raise FormatError(f"{path}: safetensors header length {n} exceeds the file")
        try:
            hdr = json.loads(f.read(n))
        except ValueError as e:
            raise FormatError(f"{path}: safetensors header is not JSON: {e}") from None
    meta = hdr.pop("__metadata__", None) or {}
    out = OrderedDict()
    for k, v in hdr.items():
        b, e = v["data_offsets"]
        dt = v["dtype"]
        if dt not in ITEMSIZE:
            raise FormatError(f"{path}: tensor {k} has dtype {dt}, which is not handled here")
        src = FileRange(path, 8 + n + b, dt, v["shape"])
        if src.nbytes != e - b or 8 + n + e > size:
            raise FormatError(f"{path}: tensor {k}: data offsets do not match its shape or the file")
        out[k] = src
    return out, meta


def write_safetensors(path, items, metadata=None, cast=None):
    """items: list of (name, Src). Header first (offsets from shapes and dtypes), then each
    tensor's chunks. cast: None or a target dtype among F32/F16/BF16 for floating tensors."""
    header = OrderedDict()
    if metadata:
        header["__metadata__"] = OrderedDict((str(k), str(v)) for k, v in metadata.items())
    off = 0
    plan = []
    for name, src in items:
        dt = cast if (cast and src.dtype in FLOAT_DTYPES + ("F64",)) else src.dtype
        nb = src.numel * ITEMSIZE[dt]
        header[name] = OrderedDict([("dtype", dt), ("shape", list(src.shape)), ("data_offsets", [off, off + nb])])
        plan.append((name, src, dt, nb))
        off += nb
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    tmp = path + ".part"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(hb)))
            f.write(hb)
            for name, src, dt, nb in plan:
                written = 0
                for b in src.chunks():
                    if dt != src.dtype:
                        b = convert_bytes(b, src.dtype, dt)
                    f.write(b)
                    written += len(b)
                if written != nb:
                    raise FormatError(f"tensor {name}: wrote {written} bytes, expected {nb}")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return off


def convert_bytes(b, src, dst):
    """Floating dtype conversion of a chunk (round to nearest even)."""
    import numpy as np
    if src == "BF16":
        x = (np.frombuffer(b, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    elif src == "F16":
        x = np.frombuffer(b, dtype="<f2").astype(np.float32)
    elif src == "F64":
        x = np.frombuffer(b, dtype="<f8")
    else:
        x = np.frombuffer(b, dtype="<f4")
    if dst == "F32":
        return x.astype("<f4").tobytes()
    if dst == "F16":
        return x.astype("<f2").tobytes()
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    nan = np.isnan(x.astype(np.float32))
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
    r[nan] = 0x7FC0
    return r.tobytes()


# ---------------------------------------------------------------------------------------------
# The transformers layout of the BAAI repos -> official EVA-CLIP names.
#
# Source of every rule: the BAAI EVA-CLIP-8B/18B Hugging Face remote code (`modeling_evaclip.py`,
# classes EvaCLIPVisionEmbeddings, EvaCLIPAttention, EvaCLIPMLP/EvaCLIPSwiGLUMLP,
# EvaCLIPEncoderLayer, EvaCLIPVisionTransformer, EvaCLIPTextTransformer, EvaCLIPModel), read
# against the official module tree (EVA-CLIP-18B `eva_vit_model.py`, open_clip's text tower):
#   vision_model.embeddings.class_embedding [D]       nn.Parameter(randn(D))    -> visual.cls_token [1,1,D]
#   vision_model.embeddings.patch_embedding.{w,b}     Conv2d(3, D, P, P)         -> visual.patch_embed.proj.*
#   vision_model.embeddings.position_embedding.weight nn.Embedding(N, D): [N,D] -> visual.pos_embed [1,N,D]
#   vision_model.encoder.layers.i.layer_norm1/2       norm before/after attn/mlp -> visual.blocks.i.norm1/2
#   ...self_attn.q_proj/k_proj/v_proj.weight [D,D]    three Linear              -> attn.qkv.weight [3D,D] (rows q;k;v)
#                                                     (split kept for SwiGLU/EVA-02 layers: attn.q_proj/...)
#   ...self_attn.q_proj.bias / v_proj.bias            config q_bias / v_bias     -> attn.q_bias / attn.v_bias
#   ...self_attn.k_proj.bias                          config k_bias: no official counterpart (must be absent)
#   ...self_attn.inner_attn_ln                        sub-LN (EVA-02 only)       -> attn.inner_attn_ln
#   ...self_attn.out_proj                             Linear(D, D)               -> attn.proj
#   ...mlp.fc1 / fc2 (GELU MLP)                                                   -> mlp.fc1 / mlp.fc2
#   ...mlp.fc1 / fc2 / fc3 / ffn_ln (SwiGLU: silu(fc1(x)) * fc2(x) -> ffn_ln -> fc3)
#                                                                                 -> mlp.w1 / w2 / w3 / ffn_ln
#   vision_model.post_layernorm                       norm of the class token    -> visual.norm
#   visual_projection.weight [E,D] (.bias)            Linear(D, E)               -> visual.head.weight (.bias;
#                                                     an all-zero bias is dropped: the 8B/18B head has none)
#   text_model.embeddings.token_embedding.weight                                  -> text.token_embedding.weight
#   text_model.embeddings.position_embedding.weight   [L,W]                      -> text.positional_embedding
#   text_model.encoder.layers.i.self_attn.{q,k,v}_proj.{weight,bias}              -> ...resblocks.i.attn.in_proj_weight
#                                                     / in_proj_bias (rows q;k;v, nn.MultiheadAttention order)
#   ...self_attn.out_proj, layer_norm1/2, mlp.fc1/fc2 -> attn.out_proj, ln_1/ln_2, mlp.c_fc/c_proj
#   text_model.final_layer_norm                                                   -> text.ln_final
#   text_projection.weight [E,W]                      Linear(W, E, bias=False)   -> text.text_projection [W,E]
#                                                     (open_clip multiplies x @ P: the transpose)
#   logit_scale                                                                   -> logit_scale
#   *.position_ids (buffers), *rope.freqs_cos/sin                                 -> dropped

HF_VIS_LAYER = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.(.+)$")
HF_TXT_LAYER = re.compile(r"^text_model\.encoder\.layers\.(\d+)\.(.+)$")

HF_VIS_SIMPLE = {
    "layer_norm1.weight": "norm1.weight", "layer_norm1.bias": "norm1.bias",
    "layer_norm2.weight": "norm2.weight", "layer_norm2.bias": "norm2.bias",
    "self_attn.out_proj.weight": "attn.proj.weight", "self_attn.out_proj.bias": "attn.proj.bias",
    "self_attn.inner_attn_ln.weight": "attn.inner_attn_ln.weight",
    "self_attn.inner_attn_ln.bias": "attn.inner_attn_ln.bias",
    "self_attn.q_proj.bias": "attn.q_bias", "self_attn.v_proj.bias": "attn.v_bias",
}
HF_VIS_GELU = {"mlp.fc1.weight": "mlp.fc1.weight", "mlp.fc1.bias": "mlp.fc1.bias",
               "mlp.fc2.weight": "mlp.fc2.weight", "mlp.fc2.bias": "mlp.fc2.bias"}
HF_VIS_SWIGLU = {"mlp.fc1.weight": "mlp.w1.weight", "mlp.fc1.bias": "mlp.w1.bias",
                 "mlp.fc2.weight": "mlp.w2.weight", "mlp.fc2.bias": "mlp.w2.bias",
                 "mlp.fc3.weight": "mlp.w3.weight", "mlp.fc3.bias": "mlp.w3.bias",
                 "mlp.ffn_ln.weight": "mlp.ffn_ln.weight", "mlp.ffn_ln.bias": "mlp.ffn_ln.bias"}
HF_TXT_SIMPLE = {
    "layer_norm1.weight": "ln_1.weight", "layer_norm1.bias": "ln_1.bias",
    "layer_norm2.weight": "ln_2.weight", "layer_norm2.bias": "ln_2.bias",
    "self_attn.out_proj.weight": "attn.out_proj.weight", "self_attn.out_proj.bias": "attn.out_proj.bias",
    "mlp.fc1.weight": "mlp.c_fc.weight", "mlp.fc1.bias": "mlp.c_fc.bias",
    "mlp.fc2.weight": "mlp.c_proj.weight", "mlp.fc2.bias": "mlp.c_proj.bias",
}
HF_TOP = {
    "vision_model.embeddings.patch_embedding.weight": "visual.patch_embed.proj.weight",
    "vision_model.embeddings.patch_embedding.bias": "visual.patch_embed.proj.bias",
    "vision_model.post_layernorm.weight": "visual.norm.weight",
    "vision_model.post_layernorm.bias": "visual.norm.bias",
    "visual_projection.weight": "visual.head.weight", "visual_projection.bias": "visual.head.bias",
    "text_model.embeddings.token_embedding.weight": "text.token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "text.positional_embedding",
    "text_model.final_layer_norm.weight": "text.ln_final.weight",
    "text_model.final_layer_norm.bias": "text.ln_final.bias",
    "logit_scale": "logit_scale",
}


def is_all_zero(src):
    """Every value is +0 or -0 (F32/F16/BF16)."""
    it = ITEMSIZE[src.dtype]
    if src.dtype not in FLOAT_DTYPES:
        return False
    raw = src.read_all()
    mask = (1 << (8 * it - 1)) - 1
    return all(int.from_bytes(raw[i:i + it], "little") & mask == 0 for i in range(0, len(raw), it))


def is_hf_layout(keys):
    return any(k.startswith(("vision_model.", "text_model.")) for k in keys)


def hf_to_official(src, where):
    """OrderedDict HF key -> Src  =>  (OrderedDict official key -> Src, notes). FormatError on keys
    with no official counterpart."""
    out, notes, unknown, dropped = OrderedDict(), [], [], []
    swiglu = {m.group(1) for k in src for m in [HF_VIS_LAYER.match(k)] if m and m.group(2).startswith("mlp.fc3.")}
    qkv = {}  # (tower, layer) -> {q:, k:, v:, qb:, kb:, vb:}

    def put(name, s):
        if name in out:
            raise FormatError(f"{where}: two tensors map to {name}")
        out[name] = s

    for k, s in src.items():
        if k.endswith("position_ids") or "rope.freqs_" in k:
            dropped.append(k)
            continue
        if k == "visual_projection.bias" and is_all_zero(s):
            notes.append("dropped visual_projection.bias (all zeros: the official head has no bias)")
            continue
        if k in HF_TOP:
            put(HF_TOP[k], s)
        elif k == "vision_model.embeddings.class_embedding":
            put("visual.cls_token", Reshaped(s, (1, 1, s.numel)))
        elif k == "vision_model.embeddings.position_embedding.weight":
            put("visual.pos_embed", Reshaped(s, (1,) + tuple(s.shape)))
        elif k == "text_projection.weight":
            put("text.text_projection", Transposed(s))
        elif HF_VIS_LAYER.match(k):
            i, rest = HF_VIS_LAYER.match(k).groups()
            pre = f"visual.blocks.{i}."
            mlp = HF_VIS_SWIGLU if i in swiglu else HF_VIS_GELU
            m = re.match(r"^self_attn\.([qkv])_proj\.(weight|bias)$", rest)
            if m and not (m.group(2) == "bias" and m.group(1) in "qv"):
                if i in swiglu and m.group(2) == "weight":  # EVA-02 layout keeps q/k/v split
                    put(pre + f"attn.{m.group(1)}_proj.weight", s)
                else:
                    qkv.setdefault(("v", i), {})[m.group(1) + m.group(2)[0]] = s
            elif rest in HF_VIS_SIMPLE:
                put(pre + HF_VIS_SIMPLE[rest], s)
            elif rest in mlp:
                put(pre + mlp[rest], s)
            else:
                unknown.append(k)
        elif HF_TXT_LAYER.match(k):
            i, rest = HF_TXT_LAYER.match(k).groups()
            pre = f"text.transformer.resblocks.{i}."
            m = re.match(r"^self_attn\.([qkv])_proj\.(weight|bias)$", rest)
            if m:
                qkv.setdefault(("t", i), {})[m.group(1) + m.group(2)[0]] = s
            elif rest in HF_TXT_SIMPLE:
                put(pre + HF_TXT_SIMPLE[rest], s)
            else:
                unknown.append(k)
        else:
            unknown.append(k)
    for (tower, i), parts in qkv.items():
        w = [parts.get(c + "w") for c in "qkv"]
        if tower == "v":
            if "kb" in parts:
                unknown.append(f"vision_model.encoder.layers.{i}.self_attn.k_proj.bias (EVA-CLIP has no k bias)")
            if None in w:
                raise FormatError(f"{where}: vision layer {i}: q_proj/k_proj/v_proj weights incomplete")
            put(f"visual.blocks.{i}.attn.qkv.weight", Concat(w))
        else:
            b = [parts.get(c + "b") for c in "qkv"]
            if None in w or None in b:
                raise FormatError(f"{where}: text layer {i}: q/k/v projection weights or biases incomplete")
            pre = f"text.transformer.resblocks.{i}.attn."
            put(pre + "in_proj_weight", Concat(w))
            put(pre + "in_proj_bias", Concat(b))
    if unknown:
        raise FormatError(f"{where}: {len(unknown)} tensors of the transformers layout have no EVA-CLIP "
                          f"counterpart: {', '.join(unknown[:6])}{' ...' if len(unknown) > 6 else ''}")
    if dropped:
        notes.append(f"dropped {len(dropped)} buffers ({', '.join(dropped[:3])}{' ...' if len(dropped) > 3 else ''})")
    notes.append("mapped the transformers layout to the official names "
                 "(q/k/v concatenated, text_projection transposed, class/position embeddings reshaped)")
    return order_official(out), notes


def order_official(d):
    """Official key order: visual (blocks by index), text (resblocks by index), logit_scale."""
    def key(k):
        parts = re.split(r"(\d+)", k)
        return (0 if k.startswith("visual.") else 1 if k.startswith("text.") else 2,
                [int(p) if p.isdigit() else p for p in parts])
    return OrderedDict(sorted(d.items(), key=lambda kv: key(kv[0])))


# ---------------------------------------------------------------------------------------------
# Vision-only EVA pre-training weights.

VISION_ONLY_HINT = {
    4096: "BAAI/EVA-CLIP-8B: EVA_CLIP_8B_psz14_s9B.pt (224 px) or BAAI/EVA-CLIP-8B-448: "
          "EVA_CLIP_8B_psz14_plus_s0.6B.pt (448 px), or the repository's transformers shards",
    5120: "BAAI/EVA-CLIP-18B: EVA_CLIP_18B_psz14_s6B.fp16.pt, or the repository's transformers shards",
}
TEXT_MARKERS = ("text.", "text_model.", "token_embedding", "transformer.resblocks", "text_projection")


def vision_only_message(path, keys, shapes):
    """None when the state dict holds a text tower; else the refusal message."""
    if any(k.startswith(TEXT_MARKERS) or ".text." in k for k in keys):
        return None
    vis = [k for k in keys if re.search(r"(^|\.)(blocks\.\d+\.|patch_embed\.|cls_token$|pos_embed$)", k)]
    if not vis:
        return None
    width = None
    for k in keys:
        if k.endswith("patch_embed.proj.weight") and shapes.get(k):
            width = shapes[k][0]
    base = os.path.basename(path).upper()
    if width not in VISION_ONLY_HINT:
        width_hint = 5120 if "18B" in base else 4096 if "8B" in base else None
    else:
        width_hint = width
    hint = VISION_ONLY_HINT.get(width_hint, "the EVA-CLIP file of the same repository (EVA_CLIP_*.pt), "
                                       "or its transformers shards")
    return (f"{path}: vision-only EVA pre-training weights (an image encoder, {len(vis)} vision tensors, "
            f"no text tower, width {width}), not an EVA-CLIP checkpoint; use {hint} instead")
