"""Read TensorFlow (1.x / 2.x) checkpoints -- the "tensor bundle" format -- without TensorFlow.

A checkpoint ``prefix`` is two kinds of files:

* ``prefix.index``: a LevelDB-style SSTable mapping each tensor name to a
  ``BundleEntryProto`` (dtype, shape, shard, byte offset and size, CRC32C); the empty key
  holds the ``BundleHeaderProto`` (number of shards, endianness).  Layout: data blocks
  (prefix-compressed key/value entries + restart array, each followed by a 5-byte trailer:
  compression byte + CRC), a meta-index block, an index block (last key -> block handle of
  each data block) and a 48-byte footer (two block handles, padding, magic number).
* ``prefix.data-SSSSS-of-NNNNN``: the raw little-endian tensor bytes, one file per shard.

Only what variables need is supported: uncompressed index blocks, whole (unsliced)
tensors of numeric dtypes.  ``mzsr_state_dict`` turns MZSR's ``MODEL/conv{i}/{kernel,bias}``
(HWIO) into the torch state dict ``conv{i}.{weight,bias}`` (OIHW).
"""
from __future__ import annotations

import struct
from os import PathLike
from pathlib import Path

import torch

__all__ = ["crc32c", "list_variables", "mzsr_state_dict", "read_tf_checkpoint"]

_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
# DataType enum of tensorflow/core/framework/types.proto -> torch dtype
_DTYPES = {1: torch.float32, 2: torch.float64, 3: torch.int32, 4: torch.uint8, 5: torch.int16,
           6: torch.int8, 9: torch.int64, 10: torch.bool, 14: torch.bfloat16, 19: torch.float16}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("corrupt checkpoint index: truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, object]]:
    """(field number, value) of a protobuf message: ints for varint/fixed, bytes otherwise."""
    fields, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"corrupt checkpoint index: protobuf wire type {wire}")
        fields.append((number, value))
    return fields


def _block(index: bytes, offset: int, size: int) -> bytes:
    if offset + size + 5 > len(index):
        raise ValueError("corrupt checkpoint index: block past the end of the file")
    if index[offset + size] != 0:  # the trailer's compression type; 0 = none
        raise ValueError(f"checkpoint index block is compressed (type {index[offset + size]}); "
                         "only uncompressed indexes are supported")
    return index[offset:offset + size]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + length]))
        pos += length
    return entries


def _index_entries(index: bytes) -> list[tuple[bytes, bytes]]:
    if len(index) < _FOOTER or struct.unpack_from("<Q", index, len(index) - 8)[0] != _MAGIC:
        raise ValueError("not a TensorFlow checkpoint index (bad footer magic)")
    pos = len(index) - _FOOTER
    _, pos = _varint(index, pos)  # meta-index block: filters only, not needed
    _, pos = _varint(index, pos)
    idx_offset, pos = _varint(index, pos)
    idx_size, pos = _varint(index, pos)
    entries = []
    for _, handle in _block_entries(_block(index, idx_offset, idx_size)):
        offset, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        entries += _block_entries(_block(index, offset, size))
    return entries


def _entry(value: bytes) -> dict:
    """BundleEntryProto -> dtype, shape, shard, offset, size, crc (slices unsupported)."""
    info = {"dtype": 0, "shape": [], "shard": 0, "offset": 0, "size": 0, "crc": None}
    for number, v in _proto_fields(value):
        if number == 1:
            info["dtype"] = v
        elif number == 2:  # TensorShapeProto: repeated Dim (size = 1) at field 2
            info["shape"] = [dict(_proto_fields(d)).get(1, 0) for n, d in _proto_fields(v) if n == 2]
        elif number in (3, 4, 5):
            info[{3: "shard", 4: "offset", 5: "size"}[number]] = v
        elif number == 6:
            info["crc"] = v
        elif number == 7:
            raise ValueError("sliced (partitioned) tensors are not supported")
    return info


_CRC_TABLE: list[int] = []


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TensorFlow stores per tensor."""
    if not _CRC_TABLE:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            _CRC_TABLE.append(c)
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    # TF (like LevelDB) stores CRCs rotated and offset, so CRCs of CRC-bearing data differ
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _read_index(prefix: str | PathLike) -> tuple[dict, dict[str, dict]]:
    path = Path(str(prefix) + ".index")
    if not path.is_file():
        raise FileNotFoundError(f"no TensorFlow checkpoint index at {path} "
                                "(pass the prefix, without .index)")
    header, entries = {}, {}
    for key, value in _index_entries(path.read_bytes()):
        if key == b"":
            header = dict(_proto_fields(value))
        else:
            entries[key.decode()] = _entry(value)
    if header.get(2, 0) != 0:
        raise ValueError("big-endian checkpoints are not supported")
    return header, entries


def list_variables(prefix: str | PathLike) -> dict[str, tuple[int, ...]]:
    """Every tensor name in the checkpoint with its shape (TF layout)."""
    return {name: tuple(e["shape"]) for name, e in _read_index(prefix)[1].items()}


def read_tf_checkpoint(prefix: str | PathLike, names=None, verify: bool = True) -> dict[str, torch.Tensor]:
    """Tensors of checkpoint ``prefix`` by TF name, in TF's layout (conv kernels HWIO).

    ``names``: only these (default: all); ``verify`` checks each tensor's CRC32C.
    Raises KeyError naming requested tensors that are absent.
    """
    header, entries = _read_index(prefix)
    wanted = list(entries) if names is None else list(names)
    absent = [n for n in wanted if n not in entries]
    if absent:
        raise KeyError(f"tensors not in checkpoint {prefix}: {absent}")
    shards = header.get(1, 1)
    out, files = {}, {}
    for name in wanted:
        e = entries[name]
        if e["dtype"] not in _DTYPES:
            raise ValueError(f"{name}: unsupported TensorFlow dtype enum {e['dtype']}")
        data_path = Path(f"{prefix}.data-{e['shard']:05d}-of-{shards:05d}")
        if data_path not in files:
            if not data_path.is_file():
                raise FileNotFoundError(f"checkpoint data file missing: {data_path}")
            files[data_path] = data_path.read_bytes()
        raw = files[data_path][e["offset"]:e["offset"] + e["size"]]
        dtype = _DTYPES[e["dtype"]]
        numel = 1
        for d in e["shape"]:
            numel *= d
        if len(raw) != e["size"] or e["size"] != numel * torch.empty((), dtype=dtype).element_size():
            raise ValueError(f"{name}: {e['size']} bytes at {e['offset']} do not hold "
                             f"{dtype} {tuple(e['shape'])} (truncated data file?)")
        if verify and e["crc"] is not None and _masked(crc32c(raw)) != e["crc"]:
            raise ValueError(f"{name}: CRC32C mismatch (corrupt data file)")
        out[name] = torch.frombuffer(bytearray(raw), dtype=dtype).reshape(e["shape"]).clone()
    return out


def mzsr_state_dict(prefix: str | PathLike, scope: str = "MODEL", layers: int = 8) -> dict[str, torch.Tensor]:
    """MZSR's TF variables ``{scope}/conv{i}/{kernel,bias}`` as ``conv{i}.{weight,bias}``,
    kernels HWIO -> OIHW."""
    names = [f"{scope}/conv{i}/{p}" for i in range(1, layers + 1) for p in ("kernel", "bias")]
    tf = read_tf_checkpoint(prefix, names)
    state = {}
    for i in range(1, layers + 1):
        state[f"conv{i}.weight"] = tf[f"{scope}/conv{i}/kernel"].permute(3, 2, 0, 1).contiguous()
        state[f"conv{i}.bias"] = tf[f"{scope}/conv{i}/bias"]
    return state
