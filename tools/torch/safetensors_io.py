"""Reading and writing safetensors files from PyTorch without the `safetensors` package.

A stand-in for `safetensors.torch.load_file` / `safetensors.torch.save_file`: when the real package is importable
it is used (and `metadata` comes from `safe_open(...).metadata()`); otherwise the format is read and written here.

The format (https://github.com/huggingface/safetensors): an unsigned 64-bit little-endian header length N, N bytes
of UTF-8 JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str} (optional)},
then the raw little-endian tensor bytes, offsets relative to the end of the header. The header is padded with
spaces to a multiple of 8 bytes, as the real writer does.

    tensors, metadata = load("model.safetensors")       # OrderedDict[str, torch.Tensor] (header order), dict
    save("out.safetensors", model.state_dict())          # no metadata: exactly what save_file(state_dict) writes
"""

import json
import struct
import sys
from collections import OrderedDict

import torch

try:  # The real package, where it is installed.
    from safetensors import safe_open as _safe_open
    from safetensors.torch import save_file as _save_file
except ImportError:  # pragma: no cover - depends on the machine
    _safe_open = None
    _save_file = None

# safetensors dtype name -> torch dtype. tsc-nn writes F32 (and reads I64 num_batches_tracked); the rest load too.
DTYPES = OrderedDict([
    ("F64", torch.float64),
    ("F32", torch.float32),
    ("F16", torch.float16),
    ("BF16", torch.bfloat16),
    ("I64", torch.int64),
    ("I32", torch.int32),
    ("I16", torch.int16),
    ("I8", torch.int8),
    ("U8", torch.uint8),
    ("BOOL", torch.bool),
])
NAMES = {dtype: name for name, dtype in DTYPES.items()}
METADATA_KEY = "__metadata__"


def _element_size(dtype):
    return torch.empty((), dtype=dtype).element_size()


def _check_little_endian():
    if sys.byteorder != "little":  # pragma: no cover - every platform PyTorch ships for is little-endian
        raise RuntimeError("safetensors_io: this reader assumes a little-endian host")


def load(path):
    """(OrderedDict name -> tensor in the header's order, metadata dict). Raises ValueError on a malformed file."""
    if _safe_open is not None:
        with _safe_open(path, framework="pt") as f:
            return OrderedDict((k, f.get_tensor(k)) for k in f.keys()), dict(f.metadata() or {})
    _check_little_endian()
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: {len(data)} bytes is too short for the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(data)} bytes)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=OrderedDict)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    body = memoryview(data)[8 + n:]
    metadata = {}
    tensors = OrderedDict()
    for name, entry in header.items():
        if name == METADATA_KEY:
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise ValueError(f"{path}: {METADATA_KEY} is not an object of strings")
            metadata = dict(entry)
            continue
        dtype = DTYPES.get(entry.get("dtype"))
        if dtype is None:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {entry.get('dtype')!r} (supported: {', '.join(DTYPES)})")
        shape = [int(d) for d in entry["shape"]]
        begin, end = (int(o) for o in entry["data_offsets"])
        numel = 1
        for d in shape:
            numel *= d
        if end - begin != numel * _element_size(dtype) or end > len(body):
            raise ValueError(f"{path}: tensor {name}: data_offsets [{begin}, {end}] do not fit {entry['dtype']} {shape} in {len(body)} data bytes")
        raw = bytearray(body[begin:end])  # a copy: aligned, writable, independent of the file
        flat = torch.frombuffer(raw, dtype=dtype) if numel else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(shape).clone()
    return tensors, metadata


def save(path, tensors, metadata=None):
    """Write name -> tensor (a state_dict) as safetensors; metadata, when given, is a dict of strings.

    The header lists the tensors in the given (state_dict) order; the data is laid out widest element type first
    (F32 before a 1-byte type), keeping that order within a type, so every tensor is aligned to its element size.
    Without metadata no "__metadata__" key is written, as `save_file(tensors)` does.
    """
    if _save_file is not None:
        _save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata)
        return
    _check_little_endian()
    items = []
    for name, t in tensors.items():
        if name == METADATA_KEY:
            raise ValueError(f"{METADATA_KEY} is reserved and cannot name a tensor")
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in NAMES:
            raise ValueError(f"{name}: dtype {t.dtype} is not supported (supported: {', '.join(str(d) for d in NAMES)})")
        items.append((name, t.detach().to("cpu").contiguous()))
    layout = sorted(items, key=lambda item: -item[1].element_size())  # stable: state_dict order within a type
    header = OrderedDict()
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("metadata must map strings to strings")
        header[METADATA_KEY] = dict(metadata)
    offsets = {}
    offset = 0
    for name, t in layout:
        size = t.numel() * t.element_size()
        offsets[name] = [offset, offset + size]
        offset += size
    for name, t in items:
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": offsets[name]}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, t in layout:
            # bfloat16 has no numpy type: write its bits through int16.
            f.write((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes())
