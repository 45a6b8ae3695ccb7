#!/usr/bin/env python3
"""The workloads of `ppo-lens bench` with PyTorch and transformers on this CPU.

What a user would write instead of ppo-lens: `Qwen2ForCausalLM` with the same config and random
weights, a linear value head on the last hidden state, `generate()` for decoding and sampling,
and the PPO update in plain PyTorch (the math of src/ppo/, as TRL's PPO trainer does it):

- forward: one pass over [4, 128] ids, logits and values, under no_grad;
- decode: `generate()` greedy with the KV cache, prompt 16, 64 new tokens, batch 4;
- PPO iteration on 8 random prompts of 16 tokens:
  - rollout: `generate()` samples 32 tokens at temperature 1 (top_k 0, top_p 1, no EOS), then one
    pass of the policy over prompt + response gives the logprobs and values (ppo-lens records
    both while sampling);
  - reference: the frozen copy's logprobs, then the token rewards -0.05 * (logp - ref_logp) with
    the score (1 on even rows, 0 on odd) added on the last token;
  - gae: the reverse loop over tokens (gamma 1, lambda 0.95) and whitening;
  - update: 2 epochs over mini-batches of 4 (4 AdamW steps, lr 1e-5, no weight decay), clipped
    policy loss (0.2), clipped value loss (0.2, coefficient 0.1), entropy bonus 0.01, gradient
    norm clipped to 1.
- peak memory: VmHWM over each workload, reset through /proc/self/clear_refs (Linux).

Prints one JSON line per model in the format of `ppo-lens bench --json`.
`scripts/bench.sh` runs both and prints the ratios. Needs torch and transformers from PyPI.
"""

import argparse
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM

FORWARD_BATCH, FORWARD_LEN, DECODE_PROMPT, DECODE_TOKENS = 4, 128, 16, 64
PPO_ROLLOUTS, PPO_PROMPT, PPO_RESPONSE = 8, 16, 32
EPOCHS, MINI_BATCH, LR = 2, 4, 1e-5
CLIP, CLIP_VALUE, VF_COEF, ENTROPY_COEF, KL_COEF = 0.2, 0.2, 0.1, 0.01, 0.05
GAMMA, LAM = 1.0, 0.95

CONFIGS = {
    # www/models/tiny/config.json
    "tiny": dict(vocab_size=104, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2),
    "50M": dict(vocab_size=32000, hidden_size=512, intermediate_size=1536, num_hidden_layers=10,
                num_attention_heads=8, num_key_value_heads=4),
}


def peak_mib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def timed(fn, iters):
    """Median seconds of `iters` runs after one warm-up run, and the peak memory."""
    reset_peak()
    fn()
    times = []
    for _ in range(max(iters, 1)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), peak_mib()


class Actor(nn.Module):
    """The causal LM with a value head on the last hidden state (as TRL's value-head models)."""

    def __init__(self, config):
        super().__init__()
        self.lm = Qwen2ForCausalLM(config)
        self.v_head = nn.Linear(config.hidden_size, 1)
        nn.init.zeros_(self.v_head.weight)
        nn.init.zeros_(self.v_head.bias)

    def forward(self, ids, mask):
        out = self.lm(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return out.logits, self.v_head(out.hidden_states[-1]).squeeze(-1)


def response_outputs(actor, ids, mask, prompt_len):
    """Logits at positions P - 1 + t score response token t; values there are V(s_t)."""
    logits, values = actor(ids, mask)
    logits = logits[:, prompt_len - 1:-1]
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, prompt_len:, None]).squeeze(-1)
    return logits, logp, values[:, prompt_len - 1:-1]


def whiten(x):
    return (x - x.mean()) / torch.sqrt(x.var(unbiased=True) + 1e-8)


def ppo_iteration(policy, reference, optim, prompts):
    phases = {}
    start = time.perf_counter()
    with torch.no_grad():
        ids = policy.lm.generate(
            input_ids=prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
            temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=PPO_RESPONSE,
            min_new_tokens=PPO_RESPONSE, pad_token_id=0, use_cache=True)
        mask = torch.ones_like(ids)
        _, old_logp, old_values = response_outputs(policy, ids, mask, PPO_PROMPT)
    phases["rollout_ms"] = (time.perf_counter() - start) * 1e3

    start = time.perf_counter()
    with torch.no_grad():
        _, ref_logp, _ = response_outputs(reference, ids, mask, PPO_PROMPT)
        rewards = -KL_COEF * (old_logp - ref_logp)
        scores = torch.tensor([1.0 if i % 2 == 0 else 0.0 for i in range(len(ids))])
        rewards[:, -1] += scores
    phases["reference_ms"] = (time.perf_counter() - start) * 1e3

    start = time.perf_counter()
    with torch.no_grad():
        last, advantages = 0.0, []
        for t in reversed(range(PPO_RESPONSE)):
            next_value = old_values[:, t + 1] if t + 1 < PPO_RESPONSE else 0.0
            delta = rewards[:, t] + GAMMA * next_value - old_values[:, t]
            last = delta + GAMMA * LAM * last
            advantages.append(last)
        advantages = torch.stack(advantages[::-1], dim=1)
        returns = advantages + old_values
        advantages = whiten(advantages)
    phases["gae_ms"] = (time.perf_counter() - start) * 1e3

    start = time.perf_counter()
    steps = 0
    for _ in range(EPOCHS):
        for rows in torch.randperm(len(ids)).split(MINI_BATCH):
            logits, logp, values = response_outputs(policy, ids[rows], mask[rows], PPO_PROMPT)
            ratio = torch.exp(logp - old_logp[rows])
            adv = advantages[rows]
            policy_loss = torch.max(-adv * ratio,
                                    -adv * ratio.clamp(1 - CLIP, 1 + CLIP)).mean()
            v_old = old_values[rows]
            v_clip = v_old + (values - v_old).clamp(-CLIP_VALUE, CLIP_VALUE)
            value_loss = 0.5 * torch.max((values - returns[rows]) ** 2,
                                         (v_clip - returns[rows]) ** 2).mean()
            entropy = (torch.logsumexp(logits, -1)
                       - (F.softmax(logits, -1) * logits).sum(-1)).mean()
            loss = policy_loss + VF_COEF * value_loss - ENTROPY_COEF * entropy
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optim.step()
            steps += 1
    assert steps == 4, steps
    phases["update_ms"] = (time.perf_counter() - start) * 1e3
    return phases


def bench(name, iters):
    torch.manual_seed(0)
    config = Qwen2Config(**CONFIGS[name], tie_word_embeddings=True, rms_norm_eps=1e-6,
                         max_position_embeddings=4096, use_sliding_window=False)
    actor = Actor(config).eval()
    for p in actor.parameters():
        if p.dim() > 1:
            nn.init.normal_(p, std=0.02)
    result = {
        "impl": f"transformers {transformers.__version__} / torch {torch.__version__}",
        "model": name, "params": sum(p.numel() for p in actor.parameters()),
        "threads": torch.get_num_threads(),
    }

    ids = torch.randint(0, config.vocab_size, (FORWARD_BATCH, FORWARD_LEN))

    def forward():
        with torch.no_grad():
            actor(ids, torch.ones_like(ids))

    seconds, result["forward_peak_mib"] = timed(forward, iters)
    result["forward_tokens_per_s"] = round(FORWARD_BATCH * FORWARD_LEN / seconds, 1)

    prompt = torch.randint(0, config.vocab_size, (FORWARD_BATCH, DECODE_PROMPT))

    def decode():
        with torch.no_grad():
            actor.lm.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt),
                              max_new_tokens=DECODE_TOKENS, min_new_tokens=DECODE_TOKENS,
                              do_sample=False, use_cache=True, pad_token_id=0)

    seconds, result["decode_peak_mib"] = timed(decode, min(iters, 3))
    result["decode_tokens_per_s"] = round(FORWARD_BATCH * DECODE_TOKENS / seconds, 1)

    policy = actor.train()
    # The same weights as the policy, frozen: the reference.
    reference = copy.deepcopy(actor).eval().requires_grad_(False)
    optim = torch.optim.AdamW(policy.parameters(), lr=LR, weight_decay=0.0)
    prompts = torch.randint(0, config.vocab_size, (PPO_ROLLOUTS, PPO_PROMPT))
    reset_peak()
    runs = [ppo_iteration(policy, reference, optim, prompts) for _ in range(min(iters, 3) + 1)]
    result["iteration_peak_mib"] = peak_mib()
    for key in ("rollout_ms", "reference_ms", "gae_ms", "update_ms"):
        result[key] = round(statistics.median(r[key] for r in runs[1:]), 2)
    result["iteration_ms"] = round(sum(result[k] for k in
                                       ("rollout_ms", "reference_ms", "gae_ms", "update_ms")), 1)
    print(json.dumps(result), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny,50M")
    parser.add_argument("--iters", type=int, default=3)
    args = parser.parse_args()
    for name in args.models.split(","):
        if name not in CONFIGS:
            parser.error(f"unknown model `{name}`: use tiny or 50M")
        bench(name, args.iters)


if __name__ == "__main__":
    main()
