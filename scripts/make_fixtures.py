#!/usr/bin/env python3
"""Make the reference fixtures that ppo-lens's model tests compare against.

Each fixture is a tiny random Qwen2 checkpoint in the Hugging Face layout, made and run by
PyTorch and transformers, plus the numbers transformers computes on it:

  tests/fixtures/qwen2-tied/       f32 weights, tied embeddings, as many KV heads as query heads,
                                   the older config.json dialect (top-level rope_theta, torch_dtype)
  tests/fixtures/qwen2-gqa-bf16/   bf16 weights, untied lm_head, grouped KV heads (4 query heads
                                   share 2 KV heads), the newer dialect (rope_parameters, dtype)

Every bias and norm weight is moved away from its initial value (zeros, ones), so a loader that
silently drops one of them gives different numbers. Each directory also gets a value head
(value_head.safetensors, `v_head.summary.weight` and `.bias`) and a small word-level
tokenizer.json.

expected.json holds, for fixed ids: `logprobs[b][t]` = log p(ids[b][t] | ids[b][<t]) (null at
t = 0), the values of the value head at every position, and the same for a left-padded batch
(pad positions get null), where transformers is given position_ids = cumsum(mask) - 1 exactly as
its generate() does.

Run it with PyPI's torch and transformers (any recent version):
    python3 -m venv .venv && .venv/bin/pip install torch transformers safetensors
    .venv/bin/python scripts/make_fixtures.py
The output is committed; the Rust tests never run Python.
"""

import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import Qwen2Config, Qwen2ForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

# A small readable vocabulary: the ids the tests feed are words, so a failure is easy to read.
WORDS = (
    "<|endoftext|> <|im_start|> <|im_end|> <unk> system user assistant the a of and to is in "
    "Tom has apples pears he buys gives away how many does have now answer #### 0 1 2 3 4 5 6 "
    "7 8 9 + - * = . , ? ! : ; ( ) $ more less each left total there are were"
).split()


def make_tokenizer(vocab_size):
    vocab = {w: i for i, w in enumerate(WORDS)}
    assert len(vocab) <= vocab_size, "the fixture vocabulary must fit the model's vocab_size"
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    return tok


def perturb_(model, gen):
    """Move every bias and norm weight off its init so that dropping one is detected."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.2 * torch.randn(p.shape, generator=gen))


def logprobs_and_values(model, v_w, v_b, ids, mask):
    """log p(ids[t] | ids[<t]) and the value head's output, positions as generate() makes them."""
    position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids,
            output_hidden_states=True,
        )
    logits = out.logits.float()
    # Qwen2Model appends the hidden state after the final RMSNorm as the last entry.
    hidden = out.hidden_states[-1].float()
    values = hidden @ v_w.float().T + v_b.float()  # [B, T, 1]
    logp = torch.log_softmax(logits, dim=-1)
    rows_lp, rows_v = [], []
    for b in range(ids.shape[0]):
        lp, vs = [], []
        for t in range(ids.shape[1]):
            real = bool(mask[b, t])
            vs.append(float(values[b, t, 0]) if real else None)
            if t == 0 or not real or not bool(mask[b, t - 1]):
                lp.append(None)
            else:
                lp.append(float(logp[b, t - 1, ids[b, t]]))
        rows_lp.append(lp)
        rows_v.append(vs)
    return rows_lp, rows_v, logits


def write_config(path, config, dialect, dtype_name):
    """Write config.json in one of the two dialects that exist in the wild."""
    d = config.to_dict()
    for key in ("rope_theta", "rope_parameters", "rope_scaling", "torch_dtype", "dtype"):
        d.pop(key, None)
    theta = float(config_rope_theta(config))
    if dialect == "legacy":
        d["rope_theta"] = theta
        d["rope_scaling"] = None
        d["torch_dtype"] = dtype_name
    else:
        d["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
        d["dtype"] = dtype_name
    d["architectures"] = ["Qwen2ForCausalLM"]
    with open(path, "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
        f.write("\n")


def config_rope_theta(config):
    if getattr(config, "rope_parameters", None):
        return config.rope_parameters["rope_theta"]
    return config.rope_theta


def make(name, seed, *, heads, kv_heads, tie, dtype, dialect):
    out = os.path.join(ROOT, name)
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    vocab_size = 72
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=tie,
        bos_token_id=0,
        eos_token_id=2,
        use_sliding_window=False,
    )
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    perturb_(model, gen)
    if dtype == "bfloat16":
        # The checkpoint is stored in bf16; the reference numbers come from those bf16 weights
        # computed in f32, which is what ppo-lens does on the CPU.
        # Round the parameters only: `model.to(bfloat16)` would also round the rotary inv_freq
        # buffer, which a real bf16 checkpoint does not store.
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
        save_dtype = torch.bfloat16
    else:
        save_dtype = torch.float32

    state = {k: v.detach().to(save_dtype).contiguous() for k, v in model.state_dict().items()}
    if tie:
        state.pop("lm_head.weight", None)
    save_file(state, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    write_config(os.path.join(out, "config.json"), config, dialect, dtype)

    v_w = 0.5 * torch.randn((1, config.hidden_size), generator=gen)
    v_b = 0.5 * torch.randn((1,), generator=gen)
    save_file(
        {"v_head.summary.weight": v_w, "v_head.summary.bias": v_b},
        os.path.join(out, "value_head.safetensors"),
        metadata={"format": "pt"},
    )
    make_tokenizer(vocab_size).save(os.path.join(out, "tokenizer.json"))

    ids = torch.randint(0, vocab_size, (2, 12), generator=gen)
    full = torch.ones_like(ids)
    lp, vs, logits = logprobs_and_values(model, v_w, v_b, ids, full)

    # The same rows left-padded to 14 with different pad lengths (pad id 0, as a tokenizer would).
    pad_lens = [2, 5]
    padded = torch.zeros((2, 14), dtype=torch.long)
    pmask = torch.zeros((2, 14), dtype=torch.long)
    for b, p in enumerate(pad_lens):
        n = 14 - p
        padded[b, p:] = ids[b, :n]
        pmask[b, p:] = 1
    plp, pvs, _ = logprobs_and_values(model, v_w, v_b, padded, pmask)

    text = "Tom has 3 apples and buys 4 more . how many apples does he have now ?"
    enc = make_tokenizer(vocab_size).encode(text, add_special_tokens=False)
    text_ids = torch.tensor([enc.ids])
    tlp, tvs, _ = logprobs_and_values(model, v_w, v_b, text_ids, torch.ones_like(text_ids))

    expected = {
        "made_by": f"scripts/make_fixtures.py with torch {torch.__version__}, "
        f"transformers {transformers.__version__}",
        "ids": ids.tolist(),
        "logprobs": lp,
        "values": vs,
        "last_logits": logits[:, -1, :].tolist(),
        "padded": {"ids": padded.tolist(), "mask": pmask.tolist(), "logprobs": plp, "values": pvs},
        "text": {"text": text, "ids": enc.ids, "tokens": enc.tokens, "logprobs": tlp[0], "values": tvs[0]},
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print(f"wrote {out}")


def main():
    torch.set_num_threads(1)
    make("qwen2-tied", 1, heads=4, kv_heads=4, tie=True, dtype="float32", dialect="legacy")
    make("qwen2-gqa-bf16", 2, heads=4, kv_heads=2, tie=False, dtype="bfloat16", dialect="new")
    return 0


if __name__ == "__main__":
    sys.exit(main())
