"""Hugging Face folders with the shapes of real models and random weights, and transformers'
loss on them.

For each shape (Qwen2.5-0.5B, Llama-3.2-1B: their config.json values, vocabulary and tied
embeddings included; two of Qwen2.5-7B's layers with its untied vocabulary) this makes a folder with float16 safetensors as transformers saves them
(weights drawn by transformers' own initialisation from seed 0) and the SmolLM2-135M-Instruct
tokenizer from the test GGUF (its 49152 ids fit both vocabularies), then records in
expected.json the loss transformers computes in float32 on sample.txt, tokenized as
`weblora eval` does a .txt file (one example: its tokens, then <|im_end|>; loss on every token).

usage: python benchmarks/shapes/make_shapes.py OUT_DIR [--shape NAME ...]
       (from the repository root; versions in requirements.txt; scripts/shape-check.sh runs it)
"""
import argparse
import json
import pathlib

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config

here = pathlib.Path(__file__).parent
root = here.parent.parent
gguf = root / "cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

SHAPES = {
    "qwen2.5-0.5b": lambda: Qwen2Config(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        vocab_size=151936,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "llama-3.2-1b": lambda: LlamaConfig(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        vocab_size=128256,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
    ),
    # Qwen2.5-7B's layers (two of its 28) and untied vocabulary: its float16 MLP projections
    # (135.8 MB each) are over WebGPU's 128 MiB binding, so they are stored in parts.
    "qwen2.5-7b-2-layers": lambda: Qwen2Config(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=2,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        vocab_size=152064,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    ),
}


def make(name: str, out: pathlib.Path) -> dict:
    folder = out / name
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(SHAPES[name](), dtype=torch.float16)
    model.save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.save_pretrained(folder)

    # As `weblora eval` reads a .txt file: each paragraph (lines up to a blank one) is an example,
    # its lines joined by newlines; the sample is one paragraph, so all but its final newline.
    text = (here / "sample.txt").read_text().strip("\n")
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]
    model = model.float().eval()
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    params = sum(p.numel() for p in model.parameters())
    file_bytes = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    print(f"{name}: {params / 1e6:.1f} M parameters, {file_bytes / 1e6:.1f} MB of safetensors, loss {loss:.6f}")
    return {"loss": loss, "tokens": len(ids), "parameters": params, "safetensors_bytes": file_bytes}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--shape", action="append", choices=sorted(SHAPES))
    args = ap.parse_args()
    expected_path = here / "expected.json"
    expected = json.loads(expected_path.read_text()) if expected_path.exists() else {"shapes": {}}
    for name in args.shape or sorted(SHAPES):
        expected["shapes"][name] = make(name, args.out)
    expected["sample"] = "sample.txt"
    expected["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    expected_path.write_text(json.dumps(expected, indent=2) + "\n")


if __name__ == "__main__":
    main()
