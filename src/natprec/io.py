"""Tensor files: the float tensors of a ``.npy`` or ``.safetensors`` file, and the embedded demo tensors.

Bad files raise the named errors of :mod:`natprec.reference.errors` (spec/09-bad-input.md):
``InputFileError`` for a file that cannot be read as either format (or a ``.npz`` archive, or a
``name`` that is not there), ``InvalidDTypeError`` for a tensor of a dtype the reference does not take.
"""

from __future__ import annotations

import json
import struct
from importlib import resources
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from natprec.reference.errors import InputFileError, InvalidDTypeError

__all__ = ["load_tensors", "load_demo_tensors", "DEMO_RESOURCE", "DEMO_SOURCE", "SAFETENSORS_FLOAT_DTYPES"]

#: The embedded default tensor file, relative to the ``natprec`` package.
DEMO_RESOURCE = "data/demo.safetensors"
#: How a report names the demo file.
DEMO_SOURCE = f"natprec/{DEMO_RESOURCE}"
#: safetensors dtype strings of the float dtypes the reference accepts.
SAFETENSORS_FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


def _read_safetensors_header(path: Path) -> list[tuple[str, str, list]]:
    """(name, dtype string, shape) of each tensor, in file order (by data offset)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("file is shorter than a safetensors header")
        n = struct.unpack("<Q", head)[0]
        if n > path.stat().st_size - 8:
            raise ValueError("header length exceeds the file size")
        header = json.loads(fh.read(n))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    entries = [(k, v) for k, v in header.items() if k != "__metadata__"]
    entries.sort(key=lambda kv: kv[1]["data_offsets"][0])
    return [(k, v["dtype"], list(v["shape"])) for k, v in entries]


def _check_npy_size(path: Path) -> None:
    """A .npy header whose shape needs more bytes than the file holds is a bad file, not a huge allocation."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh)
            data_bytes = path.stat().st_size - fh.tell()
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read {path} as .npy: {exc}", value=str(path)) from None
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need > data_bytes:
        raise InputFileError(
            f"{path} declares shape {tuple(shape)} of {dtype} ({need} bytes) but holds {data_bytes} bytes of data",
            value=tuple(shape),
        )


def _load_safetensors(path: Path, name: str | None) -> tuple[list[tuple[str, np.ndarray]], list[dict]]:
    try:
        index = _read_safetensors_header(path)
    except (ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        why = "header JSON nested too deeply" if isinstance(exc, RecursionError) else exc
        raise InputFileError(f"{path} is neither a .npy nor a readable .safetensors file ({why})", value=str(path)) from None
    names = [k for k, _, _ in index]
    if name is not None and name not in names:
        raise InputFileError(
            f"no tensor {name!r} in {path}; available: {', '.join(names) or '(none)'}", value=name
        )
    chosen = [e for e in index if name is None or e[0] == name]
    tensors, skipped = [], []
    try:
        # Tensor by tensor, not load_file: load_file fails on the whole file when any
        # tensor has a dtype NumPy lacks (F8_E4M3, ...), and we only want the floats.
        with safe_open(str(path), framework="np") as fh:
            for k, dt, shape in chosen:
                if dt not in SAFETENSORS_FLOAT_DTYPES:
                    if name is not None:
                        raise InvalidDTypeError(
                            f"tensor {k!r} in {path} has dtype {dt}; accepted: {', '.join(SAFETENSORS_FLOAT_DTYPES)}",
                            value=dt,
                        )
                    skipped.append({"name": k, "dtype": dt, "shape": shape,
                                    "reason": f"dtype {dt} is not one of {', '.join(SAFETENSORS_FLOAT_DTYPES)}"})
                    continue
                tensors.append((k, fh.get_tensor(k)))
    except (OSError, SafetensorError) as exc:
        raise InputFileError(f"cannot read {path} as safetensors: {exc}", value=str(path)) from None
    if not tensors:
        raise InvalidDTypeError(
            f"{path} has no tensor of an accepted dtype ({', '.join(SAFETENSORS_FLOAT_DTYPES)}); "
            + "; ".join(f"{s['name']}: {s['dtype']}" for s in skipped),
            value=[s["dtype"] for s in skipped],
        )
    return tensors, skipped


def load_tensors(path, name: str | None = None) -> tuple[list[tuple[str, np.ndarray]], list[dict]]:
    """The float tensors of a ``.npy`` or ``.safetensors`` file, and the tensors skipped.

    Returns ``(tensors, skipped)``: ``tensors`` is ``[(label, array), ...]`` in file order (a
    ``.npy`` file's one array is labelled with the file name); ``skipped`` lists the safetensors
    tensors of other dtypes as ``{"name", "dtype", "shape", "reason"}``.  ``name`` picks one tensor
    of a safetensors file, whose dtype must then be a float one.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}", value=str(path)) from None
    if magic.startswith(b"PK"):
        raise InputFileError(f"{path} is a .npz archive; save the array as .npy or .safetensors", value=str(path))
    if magic == b"\x93NUMPY":
        if name is not None:
            raise InputFileError(f"--name {name!r} given, but {path} is a .npy file holding one array", value=name)
        _check_npy_size(path)
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputFileError(f"cannot read {path} as .npy: {exc}", value=str(path)) from None
        if arr.dtype.names is not None:
            raise InvalidDTypeError(f"{path} holds a structured array {arr.dtype}; a tensor has one float dtype",
                                    value=str(arr.dtype))
        if arr.dtype.kind == "V":
            raise InvalidDTypeError(
                f"{path} holds dtype {arr.dtype}: .npy cannot record ml_dtypes types such as bfloat16; "
                "save it as .safetensors",
                value=str(arr.dtype),
            )
        return [(path.name, arr)], []
    return _load_safetensors(path, name)


def load_demo_tensors(name: str | None = None) -> tuple[list[tuple[str, np.ndarray]], list[dict]]:
    """The embedded demo tensors (``natprec/data/demo.safetensors``), as :func:`load_tensors` returns them."""
    with resources.as_file(resources.files("natprec").joinpath(DEMO_RESOURCE)) as p:
        return load_tensors(p, name)
