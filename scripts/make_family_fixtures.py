#!/usr/bin/env python3
"""Make tests/fixtures/family/trl_cases.json: the policy-gradient family's advantages and losses
as TRL's own trainers compute them, which tests/family.rs holds src/ppo/ to.

Two kinds of case, each run by a real TRL trainer on the tiny random Qwen2 checkpoint of
tests/fixtures/qwen2-tied (made by make_fixtures.py):
  - GRPOTrainer with loss_type dr_grpo (Dr. GRPO: no std, a constant length) and dapo (DAPO:
    token-mean, clip-higher), and grpo with a decoupled clip;
  - RLOOTrainer (the leave-one-out baseline, the KL as a penalty on each response's score, one
    ratio per response), with and without normalize_advantages.
For each: `_generate_and_score_completions` samples G completions per prompt and scores them
with a reward function that hands out the case's rewards, so the advantages are TRL's. For
RLOO, the reference model's weights are first moved by noise, so the KL in the score is not 0,
and both models' per-token logprobs are recorded (computed as TRL computes them). Then the old
logprobs are moved away from the model's own (so the ratio is not 1) and `_compute_loss` gives
the loss. The Rust tests recompute everything from the recorded inputs.

Run it with PyPI's trl (which brings torch and transformers):
    python3 -m venv .venv && .venv/bin/pip install torch trl==1.16.0
    .venv/bin/python scripts/make_family_fixtures.py
The output is committed; the Rust tests never run Python.
"""

import json
import os
import tempfile

import torch
import trl
from datasets import Dataset
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "tests", "fixtures", "qwen2-tied")
OUT = os.path.join(HERE, "..", "tests", "fixtures", "family", "trl_cases.json")
PROMPTS = ["Tom has 3 apples", "how many pears", "he buys 2 more", "answer each ?"]
MAX_COMPLETION = 6

# (trainer, loss_type, scale_rewards, normalize_advantages, beta, epsilon, epsilon_high, G, rewards)
CASES = [
    ("grpo", "dr_grpo", "none", False, 0.04, 0.2, None, 4,
     [1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0.5, 1, 0.2, 0]),
    ("grpo", "dapo", "group", False, 0.0, 0.2, 0.28, 4,
     [1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0.3, 0.9, 0.4, 0]),
    ("grpo", "grpo", "group", False, 0.04, 0.1, 0.3, 2, [1, 0, 0, 0, 0.2, 0.8, 1, 0]),
    ("rloo", "rloo", None, False, 0.05, 0.2, 0.28, 4,
     [1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0.5, 1, 0.2, 0]),
    ("rloo", "rloo", None, True, 0.1, 0.2, None, 2, [1, 0, 0, 0, 0.2, 0.8, 1, 0]),
]


def rows(t):
    return [[float(x) for x in row] for row in t.tolist()]


def tokenizer():
    return PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(MODEL, "tokenizer.json"),
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
    )


def per_token_logps(trainer, model, batch):
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    with torch.no_grad():
        return trainer._get_per_token_logps_and_entropies(
            model, ids, attention, batch["completion_ids"].size(1)
        )[0]


def run_case(k, case, pending):
    kind, loss_type, scale, normalize, beta, eps, eps_high, g, rewards = case
    n = len(rewards)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    common = dict(
        num_generations=g,
        per_device_train_batch_size=n,
        max_completion_length=MAX_COMPLETION,
        beta=beta,
        epsilon=eps,
        epsilon_high=eps_high,
        report_to="none",
        use_cpu=True,
        bf16=False,
        temperature=1.0,
        seed=0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = Dataset.from_dict({"prompt": PROMPTS[: n // g]})
        if kind == "grpo":
            args = GRPOConfig(
                output_dir=tmp,
                loss_type=loss_type,
                scale_rewards=scale,
                use_bias_correction_kl=False,
                **common,
            )
            make = GRPOTrainer
        else:
            args = RLOOConfig(output_dir=tmp, normalize_advantages=normalize, **common)
            make = RLOOTrainer
        trainer = make(
            model=model,
            reward_funcs=lambda completions, **kw: pending.pop(0),
            args=args,
            train_dataset=data,
            processing_class=tokenizer(),
        )
        trainer.model.eval()
        gen = torch.Generator().manual_seed(100 + k)
        if kind == "rloo" and trainer.ref_model is not None:
            trainer.ref_model.eval()
            with torch.no_grad():
                for p in trainer.ref_model.parameters():
                    p.add_(0.05 * torch.randn(p.shape, generator=gen))
        pending.append([float(r) for r in rewards])
        inputs = [{"prompt": p} for p in PROMPTS[: n // g] for _ in range(g)]
        batch = trainer._generate_and_score_completions(inputs)
        mask = batch["completion_mask"].float()
        new = per_token_logps(trainer, trainer.model, batch)
        old = new + 0.3 * torch.randn(new.shape, generator=gen)
        out = {
            "trainer": kind,
            "loss_type": loss_type,
            "scale_rewards": scale,
            "normalize_advantages": normalize,
            "beta": beta,
            "epsilon": eps,
            "epsilon_high": eps_high if eps_high is not None else eps,
            "group_size": g,
            "max_completion_length": MAX_COMPLETION,
            "rewards": [float(r) for r in rewards],
            "advantages": [float(a) for a in batch["advantages"].tolist()],
            "response_mask": rows(mask),
            "logprobs_new": rows(new * mask),
            "logprobs_old": rows(old * mask),
        }
        if kind == "grpo":
            ref = new + 0.5 * torch.randn(new.shape, generator=gen)
            batch["old_per_token_logps"] = old
            batch["ref_per_token_logps"] = ref
            out["ref_logprobs"] = rows(ref * mask)
        else:
            # The KL in the score was TRL's own, from the model's logprobs at generation and the
            # moved reference's: recorded as computed the same way.
            ref = per_token_logps(trainer, trainer.ref_model, batch)
            out["ref_logprobs"] = rows(ref * mask)
            batch["old_logps"] = (old * mask).sum(1)
        with torch.no_grad():
            out["loss"] = float(trainer._compute_loss(trainer.model, batch))
    return out


def main():
    torch.manual_seed(0)
    pending = []
    out = [run_case(k, case, pending) for k, case in enumerate(CASES)]
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
