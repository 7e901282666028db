"""The peer baseline of `weblora bench --json`: the same model shapes, batch, rank and targets
trained with PyTorch + transformers + PEFT, printed as one JSON object with the same fields.

    python benchmarks/peft_baseline.py --config qwen2.5-0.5b --batch 1 --seq 128 --steps 3

Runs on CUDA when present, else on the CPU. Weights are transformers' random init (seed 0):
speed does not depend on their values. `fma_peak_gflops` is what torch reaches on a large f32
matmul (the peer has no FMA microbenchmark), so percentages are against that. Pinned versions:
benchmarks/requirements.txt (torch 2.15.0, transformers 5.24.0, peft 0.21.2).
"""

import argparse
import json
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

# The fields of each shape's Hugging Face config that matter, as bench_json.rs has them.
CONFIGS = {
    "smollm2-135m": dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_attention_heads=9,
                         num_key_value_heads=3, num_hidden_layers=30, rms_norm_eps=1e-5, rope_theta=100000.0,
                         vocab_size=49152, tie_word_embeddings=True, max_position_embeddings=8192),
    "qwen2.5-0.5b": dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_attention_heads=14,
                         num_key_value_heads=2, num_hidden_layers=24, rms_norm_eps=1e-6, rope_theta=1000000.0,
                         vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=32768),
    "llama-3.2-1b": dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=64, num_hidden_layers=16, rms_norm_eps=1e-5,
                         rope_parameters=dict(factor=32.0, high_freq_factor=4.0, low_freq_factor=1.0,
                                              original_max_position_embeddings=8192, rope_theta=500000.0,
                                              rope_type="llama3"),
                         vocab_size=128256, tie_word_embeddings=True, max_position_embeddings=131072),
}


def config_of(name):
    if name in CONFIGS:
        fields = dict(CONFIGS[name])
        return name, AutoConfig.for_model(fields.pop("model_type"), **fields)
    return name, AutoConfig.from_pretrained(name)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device, fn, reps):
    fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / reps


def peak_gflops(device):
    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    secs = timed(device, lambda: a @ b, 10 if device.type == "cuda" else 3)
    return 2 * n**3 / secs / 1e9


def matmuls(device, cfg, rows, peak):
    h, f = cfg.hidden_size, cfg.intermediate_size
    hd = getattr(cfg, "head_dim", None) or h // cfg.num_attention_heads
    q, kv, v = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd, min(cfg.vocab_size, 32768)
    shapes = [
        ("q_proj x·Wᵀ", "nt", rows, q, h), ("k/v_proj x·Wᵀ", "nt", rows, kv, h),
        ("gate/up x·Wᵀ", "nt", rows, f, h), ("down x·Wᵀ", "nt", rows, h, f),
        ("lm_head x·Wᵀ (64-row chunk)", "nt", 64, v, h), ("gate/up dy·W", "nn", rows, h, f),
        ("down dy·W", "nn", rows, f, h), ("lm_head dlogits·W (64-row chunk)", "nn", 64, h, v),
        ("lora dA duᵀ·x (gate/up)", "tn", 8, h, rows), ("lora dB dyᵀ·u (gate/up)", "tn", f, 8, rows),
    ]
    out = []
    for name, layout, m, n, k in shapes:
        a = torch.randn(*((m, k) if layout != "tn" else (k, m)), device=device)
        b = torch.randn(*((n, k) if layout == "nt" else (k, n)), device=device)
        op = {"nt": lambda: a @ b.T, "nn": lambda: a @ b, "tn": lambda: a.T @ b}[layout]
        secs = timed(device, op, 10)
        gflops = 2 * m * n * k / secs / 1e9
        out.append(dict(name=name, m=m, n=n, k=k, gflops=gflops, percent_of_peak=100 * gflops / peak))
    return out


def train_row(device, name, cfg, dtype, recompute, args):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=dtype).to(device)
    if recompute:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = (torch.arange(args.batch * args.seq, device=device) * 31 % cfg.vocab_size).view(args.batch, args.seq)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step_s = timed(device, step, args.steps)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    label = {torch.float32: "f32", torch.bfloat16: "bf16"}[dtype]
    row = dict(model=name, batch=args.batch, seq=args.seq, weights=label, recompute=recompute,
               tokens_per_s=args.batch * args.seq / step_s, step_s=step_s, peak_gpu_bytes=peak)
    return row, model


def decode(device, model, tokens):
    model.eval()
    prompt = torch.tensor([[i * 31 + 7 for i in range(4)]], device=device)
    with torch.no_grad():
        run = lambda: model.generate(prompt, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        secs = timed(device, run, 1)
    return tokens / secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="smollm2-135m", help=", ".join(CONFIGS) + ", or a config.json")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          (args.device if args.device != "auto" else "cpu"))
    name, cfg = config_of(args.config)
    peak = peak_gflops(device)
    train, decode_tps = [], None
    for label in args.dtypes.split(","):
        dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[label]
        for recompute in (False, True):
            row, model = train_row(device, name, cfg, dtype, recompute, args)
            train.append(row)
            if dtype == torch.float32 and not recompute:
                decode_tps = decode(device, model, args.tokens)
            del model
    name_of_device = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(json.dumps(dict(
        device=dict(name=name_of_device, backend=f"torch {torch.__version__} {device.type}",
                    device_type=device.type, kernels="torch"),
        fma_peak_gflops=peak, matmul=matmuls(device, cfg, args.batch * args.seq, peak), train=train,
        decode=dict(model=name, weights="f32", tokens=args.tokens, tokens_per_s=decode_tps),
    ), indent=2))


if __name__ == "__main__":
    main()
