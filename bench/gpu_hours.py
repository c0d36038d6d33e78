#!/usr/bin/env python
"""GPU-hours for Table 1 at the paper's size, as arithmetic (no GPU needed): the FLOPs of every SAE step and every
language-model pass that `saens eval CONFIG --profile paper` does, divided by an assumed share of one H100's bf16 peak.

    python bench/gpu_hours.py            (prints the markdown table that BENCHMARKS.md holds)

Counted per training token, for width W and input width d (multiply-adds count 2):
  dense SAE (ReLU, JumpReLU) training step: encoder forward 2dW, its weight gradient 2dW, decoder forward 2dW, its two
  gradients 4dW: 10dW. TopK: the encoder's 4dW; the sparse decoder's k-row gather is left out. A frozen boosting
  member's forward (for the residual of a later stage): 4dW dense, 2dW TopK. Stage j runs j - 1 of them.
  language model up to the hook: 2 x (non-embedding parameters of the blocks it runs) + 4 x (mean causal context,
  Gemma 2's 4,096-token window on alternate blocks) x (attention width) per block.
Model passes over the 800M training tokens of one SAE: one model at a time, J + 2 per seed (expanded, bagging, each
boosting stage); stepped together (chapter 8), one first pass per group of models that fits in memory at once
(`first_passes`, 80 GiB less the model and the shuffle buffer) plus J - 1 passes for boosting's later stages of every seed.
The utilisation shares are assumptions, to be replaced by what bench/gpu_check.sh measures on a lent GPU.
"""
from __future__ import annotations

from saens.config import load_config
from saens.experiments import first_passes, resource_estimate

PEAK = 989e12                       # H100 SXM, dense bf16 FLOP/s
SHARE = dict(dense=0.5, topk=0.3, model=0.4)
# the language models up to their hook: (blocks run, non-embedding parameters per block, attention width, mean causal
# context per block); from their published configs
MODELS = {"gelu-1l": (1, 4 * 512**2 + 2 * 512 * 2048, 512, 512),
          "pythia-160m": (9, 12 * 768**2, 768, 1024),
          "gemma-2-2b": (13, (2.614e9 - 256_000 * 2304) / 26, 8 * 256, (4096 + 3072) / 2)}
PARAMS = {"gelu-1l": 28e6, "pythia-160m": 162e6, "gemma-2-2b": 2.614e9}   # whole models, held on the GPU in bf16


def per_token(name: str) -> dict:
    exp = load_config(name, "paper")
    d, m, J = exp.d_in, exp.d_sae, exp.J
    dense = exp.arch != "topk"
    step, frozen = (10 if dense else 4) * d, (4 if dense else 2) * d      # FLOPs per token and feature
    sae = sum(step * w for w in (j * m for j in exp.expanded_J)) + step * J * m + J * step * m + J * (J - 1) // 2 * frozen * m
    blocks, p_block, width, ctx = MODELS[name]
    model = blocks * (2 * p_block + 4 * ctx * width)
    return dict(exp=exp, sae=sae, model=model, dense=dense)


def hours(name: str, memory=80 * 2**30) -> dict:
    t = per_token(name); exp = t["exp"]
    tokens, seeds = exp.train["n_tokens"], exp.n_ensembles
    fixed = resource_estimate(exp)["device"]["shuffle buffer"] + 2 * PARAMS[name]
    first = len(first_passes(exp, memory - fixed))
    passes_before = seeds * (exp.J + 2)
    passes_now = first + exp.J - 1
    sae_h = seeds * tokens * t["sae"] / (PEAK * SHARE["dense" if t["dense"] else "topk"]) / 3600
    model_h = lambda passes: passes * tokens * t["model"] / (PEAK * SHARE["model"]) / 3600
    return dict(name=name, arch=exp.arch, seeds=seeds, first=first, sae_gflop=t["sae"] / 1e9, model_gflop=t["model"] / 1e9,
                passes_before=passes_before, passes_now=passes_now, sae_h=sae_h, before_h=sae_h + model_h(passes_before),
                now_h=sae_h + model_h(passes_now))


if __name__ == "__main__":
    rows = [hours(n) for n in ("gelu-1l", "pythia-160m", "gemma-2-2b")]
    print("| setting | SAE GFLOP per token, one seed | model GFLOP per token | first passes (80 GiB) | "
          "model passes: one at a time / together | GPU-hours: one at a time / together |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} ({r['arch']}, {r['seeds']} seeds) | {r['sae_gflop']:.2f} | {r['model_gflop']:.3f} | {r['first']} | "
              f"{r['passes_before']} / {r['passes_now']} | {r['before_h']:.1f} / {r['now_h']:.1f} |")
    print(f"| **Table 1, all three** | | | | | **{sum(r['before_h'] for r in rows):.0f} / {sum(r['now_h'] for r in rows):.0f}** |")
