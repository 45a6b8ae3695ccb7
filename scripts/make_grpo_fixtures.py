#!/usr/bin/env python3
"""Make tests/fixtures/grpo/trl_cases.json: GRPO advantages and losses computed by TRL's own
GRPOTrainer, which src/ppo/group_advantages.rs and src/ppo/grpo_loss.rs are tested against.

A real GRPOTrainer runs on the tiny random Qwen2 checkpoint of tests/fixtures/qwen2-tied (made
by make_fixtures.py). For each case:
  1. `_generate_and_score_completions` samples G completions per prompt with that model and
     scores them with a reward function that hands out the case's rewards, so the advantages
     are TRL's (its group mean, its Bessel-corrected std, its 1e-4);
  2. the old and reference logprobs are moved away from the model's own (so the ratio is not 1
     and the KL not 0), and `_compute_loss` computes the loss for the case's `loss_type`, with
     `beta` and `epsilon` (the KL term without TRL's ratio correction,
     `use_bias_correction_kl=False`); the model's own per-token logprobs are recorded beside it.
The Rust tests recompute both from the recorded inputs.

Run it with PyPI's trl (which brings torch and transformers):
    python3 -m venv .venv && .venv/bin/pip install torch trl
    .venv/bin/python scripts/make_grpo_fixtures.py
The output is committed; the Rust tests never run Python.
"""

import json
import os
import tempfile

import torch
import trl
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
from trl import GRPOConfig, GRPOTrainer
from datasets import Dataset

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "tests", "fixtures", "qwen2-tied")
OUT = os.path.join(HERE, "..", "tests", "fixtures", "grpo", "trl_cases.json")

# (loss_type, scale_rewards, beta, epsilon, group size, rewards): the rewards cover a split group,
# a group with zero spread, a rare success and a rare failure.
CASES = [
    ("grpo", "group", 0.04, 0.2, 4, [1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0]),
    ("bnpo", "group", 0.04, 0.2, 4, [1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0]),
    ("grpo", "none", 0.1, 0.1, 4, [0.5, 0.2, 1, 0, 0.3, 0.3, 0.3, 0.3, 1, 0, 0, 0, 0.1, 0.9, 0.4, 0]),
    ("bnpo", "none", 0.0, 0.3, 2, [1, 0, 0, 0, 0.2, 0.8, 1, 1]),
    ("grpo", "group", 0.5, 0.2, 8, [1, 0, 0, 0, 0, 0, 0, 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]),
]
MAX_COMPLETION = 6


def rows(t):
    return [[float(x) for x in row] for row in t.tolist()]


def main():
    torch.manual_seed(0)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(MODEL, "tokenizer.json"),
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
    )
    prompts = ["Tom has 3 apples", "how many pears", "he buys 2 more", "answer each ?"]
    pending = []

    def case_reward(completions, **kwargs):
        return pending.pop(0)

    out = []
    for loss_type, scale, beta, eps, g, rewards in CASES:
        model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
        n = len(rewards)
        with tempfile.TemporaryDirectory() as tmp:
            args = GRPOConfig(
                output_dir=tmp,
                num_generations=g,
                per_device_train_batch_size=n,
                max_completion_length=MAX_COMPLETION,
                beta=beta,
                epsilon=eps,
                loss_type=loss_type,
                scale_rewards=scale,
                report_to="none",
                use_cpu=True,
                bf16=False,
                temperature=1.0,
                seed=0,
                # TRL 1.x multiplies the k3 term by the ratio by default (samples come from the old
                # policy); the classic objective, which ppo-lens implements, has the plain k3.
                use_bias_correction_kl=False,
            )
            data = Dataset.from_dict({"prompt": prompts[: n // g]})
            trainer = GRPOTrainer(
                model=model,
                reward_funcs=case_reward,
                args=args,
                train_dataset=data,
                processing_class=tokenizer,
            )
            trainer.model.eval()
            pending.append([float(r) for r in rewards])
            inputs = [{"prompt": p} for p in prompts[: n // g] for _ in range(g)]
            batch = trainer._generate_and_score_completions(inputs)
            mask = batch["completion_mask"].float()
            ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
            attention = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
            with torch.no_grad():
                new, _ = trainer._get_per_token_logps_and_entropies(
                    trainer.model, ids, attention, batch["completion_ids"].size(1)
                )[:2]
                gen = torch.Generator().manual_seed(len(out))
                old = new + 0.3 * torch.randn(new.shape, generator=gen)
                ref = new + 0.5 * torch.randn(new.shape, generator=gen)
                batch["old_per_token_logps"] = old
                batch["ref_per_token_logps"] = ref
                loss = trainer._compute_loss(trainer.model, batch)
        out.append(
            {
                "loss_type": loss_type,
                "loss_agg_mode": {"grpo": "seq-mean-token-mean", "bnpo": "token-mean"}[loss_type],
                "scale_rewards": scale,
                "beta": beta,
                "epsilon": eps,
                "group_size": g,
                "rewards": [float(r) for r in rewards],
                "advantages": [float(a) for a in batch["advantages"].tolist()],
                "response_mask": rows(mask),
                "logprobs_new": rows(new * mask),
                "logprobs_old": rows(old * mask),
                "ref_logprobs": rows(ref * mask),
                "loss": float(loss),
            }
        )
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(
            {"made_by": f"trl {trl.__version__}, torch {torch.__version__}", "cases": out},
            f,
            indent=1,
        )
    print(f"wrote {OUT}: {len(out)} cases")


if __name__ == "__main__":
    main()
