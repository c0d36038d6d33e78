#!/usr/bin/env python
"""The first minutes on a lent GPU: what decides whether the paper's settings can run there at all, measured before
anything is trained at size. bench/gpu_check.sh runs it before bench/gpu_check.py.

    python bench/gpu_smoke.py [--device cuda|cpu] [--out FILE.json] [--budget SECONDS]

Parts, each recorded even when another fails (`status` "ok", "failed" with the error, or "skipped: why"):
  placement   where `train_methods` trains when `train.device` is unset and when it names the device, where the models
              it returns sit (the CPU: evaluation brings each back in turn) and where evaluation runs;
  forwards    each paper setting's model shape (config read from saens/configs: width, heads, blocks up to the hook,
              context length, contexts per forward) with random weights: tokens/s and peak memory of `resid_post`,
              with eager attention and with the implementation `load_model` picks (`default_attention`); the first
              call (which compiles flex attention) is timed on its own;
  tokenizer   the embedded SmolLM2 tokenizer packing the embedded corpus into contexts: tokens/s on one CPU process;
  sae_step    one training step of each paper setting's widest SAE (the expanded one, J x d_sae features) at batch
              10,000 in fp32, TF32 and bf16 autocast: seconds per step and the peak memory the step adds, against the
              memory pre-check's estimate for it (`model_bytes`: weights, gradients, Adam, one batch's codes).
The distributed self-check (NCCL, deterministic algorithms) is bench/gpu_check.py's `distributed`.

On the CPU (`--device cpu`, what tests/test_gpu_check.py runs through gpu_check.sh) every shape is tiny and there is no
peak memory to read; the code is the same.
"""
from __future__ import annotations

import argparse, copy, json, math, os, sys, tempfile, time, traceback
from pathlib import Path

import torch

SETTINGS = ("gelu-1l", "pythia-160m", "gemma-2-2b")


def _peak_reset(device):
    if device == "cuda": torch.cuda.synchronize(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()

def _peak_gib(device, baseline: int = 0):
    "GPU memory allocated at the peak since the last reset, less `baseline` bytes (None on the CPU)."
    if device != "cuda": return None
    torch.cuda.synchronize(); return (torch.cuda.max_memory_allocated() - baseline) / 2**30

def _sync(device):
    if device == "cuda": torch.cuda.synchronize()


def placement(device, res):
    from saens.config import load_config
    from saens.ensemble import train_expanded
    from saens.experiments import train_methods
    from saens.train import resolve_device
    exp = load_config("quickstart", "ci")
    exp.d_sae, exp.J, exp.expanded_J, exp.n_ensembles = 32, 2, (2,), 1
    exp.train.update(n_tokens=512, batch_size=256, n_init_samples=256)
    data = torch.randn(1024, exp.d_in)                      # on the CPU, as a cache's rows are
    for name, asked in (("device unset", None), (f"device {device}", device)):
        e = copy.deepcopy(exp); e.train.pop("device", None)
        if asked: e.train["device"] = asked
        seen = {}
        def spy(*a, **kw):
            m = train_expanded(*a, **kw); seen["trained_on"] = str(m.W_enc.device); seen["cfg_device"] = a[3].device; return m
        with tempfile.TemporaryDirectory() as out:
            trained = train_methods(e, data, methods=("expanded",), out=Path(out), progress=False, log=lambda s: None,
                                    trainers={"expanded": spy})
            reloaded = train_methods(e, data, methods=("expanded",), out=Path(out), progress=False, log=lambda s: None)
        res[name] = dict(trained_on=seen["trained_on"], train_config_device=seen["cfg_device"],
                         returned_on=str(next(iter(trained.values())).W_enc.device),
                         reloaded_on=str(next(iter(reloaded.values())).W_enc.device),
                         evaluated_on=resolve_device(e.train.get("device")))
    res["summary"] = [f"{k}: trains on {v['trained_on']}, returns and reloads on {v['reloaded_on']}, evaluates on "
                      f"{v['evaluated_on']}" for k, v in res.items() if isinstance(v, dict)]


def _model_config(name, device):
    "The HF config of setting `name`'s model, cut at its hook (`blocks.L` keeps L + 1 blocks); tiny on the CPU."
    from transformers import Gemma2Config, GPT2Config, GPTNeoXConfig
    from saens.config import load_config
    exp = load_config(name, "paper")
    blocks, tiny = int(exp.hook.split(".")[1]) + 1, device == "cpu"
    if name == "gemma-2-2b":
        kw = dict(hidden_size=2304, intermediate_size=9216, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                  vocab_size=256_000, sliding_window=4096, attn_logit_softcapping=50.0, max_position_embeddings=8192)
        if tiny: kw.update(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                           vocab_size=512, sliding_window=16)
        cfg = Gemma2Config(num_hidden_layers=blocks, **kw)
    elif name == "pythia-160m":
        kw = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, vocab_size=50_304, max_position_embeddings=2048)
        if tiny: kw.update(hidden_size=64, intermediate_size=128, num_attention_heads=4, vocab_size=512)
        cfg = GPTNeoXConfig(num_hidden_layers=blocks, **kw)
    else:
        kw = dict(n_embd=512, n_inner=2048, n_head=8, vocab_size=48_262, n_positions=1024, activation_function="gelu")
        if tiny: kw.update(n_embd=64, n_inner=128, n_head=4, vocab_size=512)
        cfg = GPT2Config(n_layer=blocks, **kw)
    T = min(exp.ctx_len, 64) if tiny else exp.ctx_len
    C = 2 if tiny else exp.cache_config().batch_contexts
    return cfg, blocks - 1, T, C


def forwards(device, res):
    from transformers import AutoModelForCausalLM
    from saens.models import LanguageModel, default_attention, default_dtype
    dtype = default_dtype(torch.device(device))
    res["summary"] = []
    for name in SETTINGS:
        cfg, layer, T, C = _model_config(name, device)
        with torch.device(device): model = AutoModelForCausalLM.from_config(cfg, dtype=dtype).eval()
        lm = LanguageModel(model, name=name)
        ids = torch.randint(0, cfg.get_text_config().vocab_size, (C, T), device=device)
        runs = res.setdefault(name, dict(contexts=C, ctx_len=T, blocks=layer + 1, dtype=str(dtype), runs={}))["runs"]
        for impl in dict.fromkeys(("eager", default_attention(cfg, device) or model.config._attn_implementation)):
            try:
                model.set_attn_implementation(impl)
                _peak_reset(device); base = torch.cuda.memory_allocated() if device == "cuda" else 0
                t = time.perf_counter(); lm.resid_post(ids, layer); _sync(device); first = time.perf_counter() - t
                t = time.perf_counter(); reps = 2
                for _ in range(reps): lm.resid_post(ids, layer)
                _sync(device); s = (time.perf_counter() - t) / reps
                runs[impl] = dict(status="ok", first_call_s=first, seconds=s, tokens_per_s=C * T / s, peak_gib=_peak_gib(device, base))
                line = f"{name} {impl}: {C} x {T} tokens, {C * T / s:,.0f} tokens/s (first call {first:.1f} s)"
            except torch.OutOfMemoryError as e:
                runs[impl] = dict(status="out of memory", error=str(e)[:300]); line = f"{name} {impl}: OUT OF MEMORY"
            except Exception as e:
                runs[impl] = dict(status="failed", error=f"{type(e).__name__}: {str(e)[:300]}"); line = f"{name} {impl}: FAILED {type(e).__name__}"
            if runs[impl].get("peak_gib") is not None: line += f", {runs[impl]['peak_gib']:.1f} GiB above the weights"
            res["summary"].append(line)
        del model, lm
        if device == "cuda": torch.cuda.empty_cache()


def tokenizer(device, res):
    from saens.activations import iter_documents, pack_contexts
    from saens.models import load_model
    tok = load_model(device="cpu").tokenizer
    t, n = time.perf_counter(), 0
    for _, ids in pack_contexts(iter_documents("default"), tok, 128):
        n += len(ids)
        if n >= (200_000 if device == "cuda" else 20_000): break
    s = time.perf_counter() - t
    res.update(tokens=n, seconds=s, tokens_per_s=n / s)
    res["summary"] = [f"SmolLM2 tokenizer, one process: {n / s:,.0f} tokens/s"]


def sae_step(device, res):
    from saens.config import load_config
    from saens.experiments import model_bytes
    from saens.sae import make_sae
    from saens.train import TrainConfig, train_sae
    B, steps = (10_000, 3) if device == "cuda" else (256, 2)
    res["summary"] = []
    for name in SETTINGS:
        exp = load_config(name, "paper")
        if device == "cpu": exp.d_in, exp.d_sae = 64, 64
        exp.train["batch_size"] = B
        width = exp.J * exp.d_sae
        estimate = model_bytes(exp, "expanded", exp.J)     # the pre-check's bytes for this model
        x = torch.randn(2 * B, exp.d_in, device=device)
        runs = res.setdefault(name, dict(arch=exp.arch, d_in=exp.d_in, d_sae=width, batch=B, estimate_gib=estimate / 2**30, runs={}))["runs"]
        for precision in ("fp32", "tf32", "bf16"):
            try:
                if device == "cuda": torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
                _peak_reset(device); base = torch.cuda.memory_allocated() if device == "cuda" else 0
                sae = make_sae(exp.arch, exp.d_in, width, **exp.sae_kwargs, device=device)
                stamps = []
                cfg = TrainConfig(n_tokens=(steps + 1) * B, batch_size=B, precision="bf16" if precision == "bf16" else "fp32",
                                  device=device, progress=False, log_every=10**9, n_init_samples=min(B, 4096))
                train_sae(sae, x, cfg, on_step=lambda step, info: (_sync(device), stamps.append(time.perf_counter())))
                s = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
                peak = _peak_gib(device, base)
                runs[precision] = dict(status="ok", step_s=s, tokens_per_s=B / s, peak_gib=peak,
                                       peak_over_estimate=None if peak is None else peak * 2**30 / estimate)
                line = f"{name} {exp.arch} {width:,} x {exp.d_in} {precision}: {s * 1e3:.1f} ms/step"
                if peak is not None: line += f", {peak:.1f} GiB (pre-check {estimate / 2**30:.1f} GiB)"
            except torch.OutOfMemoryError as e:
                runs[precision] = dict(status="out of memory", error=str(e)[:300]); line = f"{name} {precision}: OUT OF MEMORY"
            except Exception as e:
                runs[precision] = dict(status="failed", error=f"{type(e).__name__}: {str(e)[:300]}"); line = f"{name} {precision}: FAILED {type(e).__name__}"
            finally:
                sae = None
                if device == "cuda": torch.backends.cuda.matmul.allow_tf32 = False; torch.cuda.empty_cache()
            res["summary"].append(line)


PARTS = dict(placement=placement, forwards=forwards, tokenizer=tokenizer, sae_step=sae_step)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cuda", "cpu"))
    p.add_argument("--out", default=None, help="the JSON file to write (default: print only)")
    p.add_argument("--budget", type=float, default=150, help="seconds: a part that would start later is skipped")
    a = p.parse_args(argv)
    t0, out = time.time(), dict(device=a.device, torch=torch.__version__, parts={})
    if a.device == "cuda": out["gpu"] = torch.cuda.get_device_name()
    for name, fn in PARTS.items():
        res, t = {}, time.time()
        if t - t0 > a.budget: res = dict(status=f"skipped: the budget of {a.budget:.0f} s was spent")
        else:
            try: fn(a.device, res); res["status"] = "ok"
            except Exception as e:
                res.update(status="failed", error=dict(type=type(e).__name__, message=str(e)[:500], traceback=traceback.format_exc()[-3000:]))
            res["wall_s"] = time.time() - t
        out["parts"][name] = res
        for line in res.get("summary", [res["status"]] if res["status"] != "ok" else []): print(f"[smoke] {name}: {line}", flush=True)
        if a.out:
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(a.out).with_suffix(".tmp"); tmp.write_text(json.dumps(out, indent=1, default=str)); tmp.replace(a.out)
    return 1 if any(r["status"] == "failed" for r in out["parts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
