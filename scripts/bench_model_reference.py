#!/usr/bin/env python3
"""The workloads of examples/bench_model.rs with PyTorch and transformers on this CPU.

Same configs (Qwen2ForCausalLM, random weights), same shapes: forward over [4, 128] ids, and
generate() with a 16-token prompt and 64 greedy new tokens with the KV cache. Prints one JSON
line per workload in the same format as the Rust example. Needs torch and transformers
(see scripts/make_fixtures.py); `scripts/bench_model.sh` runs both sides.
"""

import json
import os
import statistics
import time

import torch
import transformers
from transformers import Qwen2Config, Qwen2ForCausalLM

BATCH, FORWARD_LEN, PROMPT_LEN, NEW_TOKENS = 4, 128, 16, 64
CONFIGS = {
    "tiny": dict(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2),
    "50M": dict(vocab_size=32000, hidden_size=512, intermediate_size=1536, num_hidden_layers=10,
                num_attention_heads=8, num_key_value_heads=4),
}


def timed(fn, iters):
    fn()  # warm-up
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    iters = int(os.environ.get("ITERS", "5"))
    torch.manual_seed(0)
    for name, shape in CONFIGS.items():
        config = Qwen2Config(**shape, tie_word_embeddings=True, rms_norm_eps=1e-6,
                             max_position_embeddings=4096, use_sliding_window=False)
        model = Qwen2ForCausalLM(config).eval()
        params = sum(p.numel() for p in model.parameters())
        ids = torch.randint(0, config.vocab_size, (BATCH, FORWARD_LEN))
        prompt = torch.randint(0, config.vocab_size, (BATCH, PROMPT_LEN))

        def forward():
            with torch.no_grad():
                model(input_ids=ids, attention_mask=torch.ones_like(ids))

        def decode():
            with torch.no_grad():
                model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt),
                               max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                               do_sample=False, use_cache=True, pad_token_id=0)

        f = timed(forward, iters)
        d = timed(decode, min(iters, 3))
        print(json.dumps({
            "impl": f"transformers {transformers.__version__} / torch {torch.__version__}",
            "config": name, "params": params, "threads": torch.get_num_threads(),
            "forward_tokens_per_s": round(BATCH * FORWARD_LEN / f, 1),
            "decode_tokens_per_s": round(BATCH * NEW_TOKENS / d, 1),
        }), flush=True)


if __name__ == "__main__":
    main()
