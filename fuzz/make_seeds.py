"""Writes the seed corpora of the reader fuzz targets: small valid files of every kind the
readers accept, each behind one control byte (the fuzz targets' chunk size and whether the
file length is known).

Run from the repository root:
    python3 -m venv /work/venv-gguf && /work/venv-gguf/bin/pip install -r tests/fixtures/gguf/requirements.txt safetensors
    /work/venv-gguf/bin/python fuzz/make_seeds.py
"""

import json
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T, GGUFValueType, GGUFWriter
from safetensors.numpy import save

HERE = Path(__file__).resolve().parent
rng = np.random.default_rng(7)

# Control bytes: (low 4 bits: chunk size index, 0x10: length known).
CONTROLS = {"whole": 0x00, "chunk1": 0x01, "chunk7-len": 0x16}


def write_seeds(target: str, name: str, data: bytes) -> None:
    out = HERE / "corpus" / target
    out.mkdir(parents=True, exist_ok=True)
    for suffix, control in CONTROLS.items():
        (out / f"seed-{name}-{suffix}").write_bytes(bytes([control]) + data)


def f16_bytes(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).view(np.uint8)


def gguf_seed(path: Path) -> bytes:
    w = GGUFWriter(path, arch="llama")
    w.add_uint32("general.alignment", 32)
    w.add_uint8("seed.u8", 7)
    w.add_bool("seed.bool", True)
    w.add_float32("seed.f32", 0.5)
    w.add_string("seed.string", "héllo")
    w.add_array("seed.strings", ["a", "", "b"])
    w.add_array("seed.nested", [[1, 2], [3]])
    w.add_key_value("seed.f32s", [1.0, -2.5], GGUFValueType.ARRAY, sub_type=GGUFValueType.FLOAT32)
    # (rows, cols) matrices, so that the Q/K row permutation runs too.
    w.add_tensor("f32", rng.standard_normal((2, 4)).astype(np.float32))
    w.add_tensor("f16", rng.standard_normal((2, 4)).astype(np.float16))
    for qtype, block_bytes in ((T.Q8_0, 34), (T.Q4_0, 18), (T.Q4_1, 20), (T.Q5_0, 22)):
        raw = rng.integers(0, 256, (2, block_bytes), dtype=np.uint8)
        raw[:, 0:2] = f16_bytes(rng.uniform(0.001, 0.02, (2, 1)))
        w.add_tensor(qtype.name.lower(), raw, raw_dtype=qtype)
    for qtype, block_bytes, scale_at in ((T.Q4_K, 144, 0), (T.Q6_K, 210, 208)):
        raw = rng.integers(0, 256, (1, block_bytes), dtype=np.uint8)
        raw[:, scale_at : scale_at + 2] = f16_bytes(rng.uniform(0.001, 0.02, (1, 1)))
        w.add_tensor(qtype.name.lower(), raw, raw_dtype=qtype)
    w.add_tensor("bf16", rng.integers(0, 256, (1, 8), dtype=np.uint8), raw_dtype=T.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = path.read_bytes()
    path.unlink()
    return data


def safetensors_seed() -> bytes:
    tensors = {
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((2, 3)).astype(np.float32),
        "model.norm.weight": rng.standard_normal(4).astype(np.float16),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    return save(tensors, metadata={"format": "pt"})


def bf16_safetensors_seed() -> bytes:
    header = {"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}}
    raw = json.dumps(header, separators=(",", ":")).encode()
    return len(raw).to_bytes(8, "little") + raw + bytes(range(8))


def index_seed() -> bytes:
    index = {
        "metadata": {"total_size": 16},
        "weight_map": {
            "lm_head.weight": "model-00002-of-00002.safetensors",
            "model.norm.weight": "model-00001-of-00002.safetensors",
        },
    }
    return json.dumps(index).encode()


write_seeds("gguf_read", "types", gguf_seed(HERE / "seed.gguf"))
write_seeds("safetensors_read", "f32-f16-empty", safetensors_seed())
write_seeds("safetensors_read", "bf16", bf16_safetensors_seed())
write_seeds("safetensors_read", "index", index_seed())
