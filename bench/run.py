#!/usr/bin/env python
"""saens benchmarks: throughput, MFU, bagging, boosting, activation caching, connectivity/stability at scale.

    python bench/run.py [--only 1,2,...] [--device cpu|cuda] [--size ci|paper] [--out bench/results-<device>.json]

Every comparison is measured side by side in one run: the compared variants alternate, repetition by repetition
(the order rotates), and we report medians, so a noisy shared machine slows both sides alike. Ratios are the result;
absolute times only mean something on a quiet machine (or a GPU). See BENCHMARKS.md for what each number means.

1 single TopK SAE training, tokens/s: saens vs SAELens (bench/saelens_worker.py in bench/.venv-saelens)
2 achieved FLOP/s of a training step / matmul peak measured in the same run (MFU): ReLU, TopK, JumpReLU
3 naive bagging, J members trained jointly (one stacked SAE) vs J separate runs of the single trainer
4 boosting: wall time of stage j = 1..J for the per-step residual (ours as is; the official scheme) and the fix
5 activation caching: forward stopped at the hook layer vs a full Hugging Face forward with all hidden states
6 connectivity (m = 8 x 16384) and stability (4 ensembles of 8 x 16384 x 768): time and peak memory, fresh process each
7 streamed vs cached training of one TopK SAE on SmolLM2-135M's activations (tokens/s), and the model's own tokens/s
"""
from __future__ import annotations

import argparse, datetime, gc, json, math, os, platform, resource, statistics, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
SAELENS_PY = HERE / ".venv-saelens" / "bin" / "python"


# ------------------------------------------------------------------------------------------------ sizes
SIZES = {
    "ci": dict(d=576, m=4608, k=32, B=4096, steps=7, warm=2, reps=3,              # 1, 2
               bag_J=8, bag_m=1152, bag_steps=5,                                   # 3
               boost_J=8, boost_m=1152, boost_steps=4,                             # 4
               lm_batch=4, lm_ctx=128, lm_layer=9,                                 # 5
               conn_members=8, conn_m=16384, conn_k=32, conn_tokens=2048, conn_batch=256,         # 6
               stab_M=4, stab_members=8, stab_m=2048, stab_d=768, stab_full_m=16384, stab_rows=2048,
               stream_steps=6, stream_buffer=16384),                               # 7
    "paper": dict(d=768, m=16128, k=128, B=4096, steps=20, warm=3, reps=3,
                  bag_J=8, bag_m=16128, bag_steps=10,
                  boost_J=8, boost_m=16128, boost_steps=20,
                  lm_batch=8, lm_ctx=1024, lm_layer=9,
                  conn_members=8, conn_m=16384, conn_k=128, conn_tokens=65536, conn_batch=1024,
                  stab_M=4, stab_members=8, stab_m=16384, stab_d=768, stab_full_m=16384, stab_rows=None,
                  stream_steps=40, stream_buffer=65536),
}


# ------------------------------------------------------------------------------------------------ helpers
def log(*a): print(*a, flush=True)


def sync(device):
    import torch
    if str(device).startswith("cuda"): torch.cuda.synchronize()


def median(xs): return statistics.median(xs) if xs else float("nan")


def interleave(variants: dict, reps: int, on_rep=None) -> dict:
    "Run `variants` (name -> fn returning a dict with a number under 'value') `reps` times, alternating, order rotating."
    names, out = list(variants), {n: [] for n in variants}
    for r in range(reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            v = variants[n]()
            if v is None: continue
            out[n].append(v)
            log(f"    rep {r + 1}/{reps} {n}: " + ", ".join(f"{k}={_fmt(x)}" for k, x in v.items() if not isinstance(x, (list, dict))))
        if on_rep: on_rep(r)
    return out


def _fmt(x): return f"{x:.4g}" if isinstance(x, float) else str(x)


def med(runs: list, key="value"): return median([r[key] for r in runs if key in r])


def get_acts(d: int, n: int, seed: int = 0):
    """`n` rows of width `d` (float32, CPU): the embedded model's cached activations when `d` is its width and a cache
    exists (repeated if there are fewer rows), else samples of chapter 5's toy model."""
    import torch
    from safetensors.torch import load_file
    from saens.utils import saens_home
    if d == 576:
        shards = sorted(saens_home().glob("activations/smollm2-135m-blocks.9.hook_resid_post-*/train-*.safetensors"))
        if shards:
            x = torch.cat([load_file(str(s))["acts"] for s in shards[:4]]).float()
            src = f"cached SmolLM2-135M blocks.9 residuals ({shards[0].parent.name}, {len(x)} rows)"
            if len(x) < n: x = x.repeat(math.ceil(n / len(x)), 1); src += ", repeated"
            return x[:n].contiguous(), src
    from saens.toy import make_toy_model      # chapter 5's known dictionary in superposition, at this width
    toy = make_toy_model(d, 4 * d, mean_active=16, seed=seed)
    out = torch.cat([toy.sample(min(8192, n - s), seed=seed + s) for s in range(0, n, 8192)])
    return out, f"synthetic: chapter 5's toy model, {4 * d} unit features in R^{d}, 16 active per row on average"


def train_timed(sae, data, steps, B, warm, transform=None, device="cpu", comm=None):
    """Train with saens's trainer for `steps` steps; seconds per step after `warm` steps, and the call's wall time.
    `comm`: `train_sae`'s cross-process operations (bench/gpu_check.py passes one that runs the loss under autocast)."""
    from saens.train import TrainConfig, train_sae
    stamps = []
    cfg = TrainConfig(n_tokens=steps * B, batch_size=B, progress=False, n_init_samples=min(B, 4096), log_every=10**9,
                      device=device)
    def on_step(step, info): sync(device); stamps.append(time.perf_counter())
    t0 = time.perf_counter()
    train_sae(sae, data, cfg, transform=transform, on_step=on_step, comm=comm)
    wall = time.perf_counter() - t0
    per_step = (stamps[-1] - stamps[warm - 1]) / (len(stamps) - warm) if len(stamps) > warm else float("nan")
    return per_step, wall


def dtype_for(device):
    import torch
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


# ------------------------------------------------------------------------------------------------ 1: vs SAELens
class SAELensWorker:
    def __init__(self, acts_file, S, device, threads, malloc):
        args = [str(SAELENS_PY), str(HERE / "saelens_worker.py"), "--acts", str(acts_file), "--d-sae", str(S["m"]),
                "--k", str(S["k"]), "--batch", str(S["B"]), "--threads", str(threads), "--device", device]
        if malloc: args.append("--malloc-tuning")
        if device.startswith("cuda"): args.append("--autocast")
        self.err = open(WORK / "saelens_worker.log", "w")
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.hello = json.loads(self.p.stdout.readline() or '{"error": "worker died, see bench/_work/saelens_worker.log"}')
        if "error" in self.hello: raise RuntimeError(self.hello["error"])

    def run(self, **req):
        self.p.stdin.write(json.dumps(req) + "\n"); self.p.stdin.flush()
        line = self.p.stdout.readline()
        return json.loads(line) if line else {"error": "worker died, see bench/_work/saelens_worker.log"}

    def close(self):
        try: self.p.stdin.close(); self.p.wait(timeout=30)
        except Exception: self.p.kill()
        self.err.close()


def bench1(S, device, res, args):
    import torch
    from safetensors.torch import save_file
    from saens.sae import make_sae
    n = (S["steps"] + 1) * S["B"]
    acts, src = get_acts(S["d"], n)
    r = res["1_vs_saelens"] = dict(config=dict(arch="topk", d_in=S["d"], d_sae=S["m"], k=S["k"], batch=S["B"],
                                               steps=S["steps"], warmup_steps=S["warm"], dtype=str(dtype_for(device))),
                                   activations=src)
    if not SAELENS_PY.exists():
        r["skipped"] = "bench/.venv-saelens is missing: run `bash bench/saelens_env.sh` first"; log("  " + r["skipped"]); return
    WORK.mkdir(exist_ok=True)
    f = WORK / f"acts-{S['d']}.safetensors"; save_file({"acts": acts}, str(f))
    w = SAELensWorker(f, S, device, torch.get_num_threads(), args.malloc)
    r["saelens"] = w.hello
    try:
        sparse_ok = True
        probe = w.run(steps=2, warmup=1, sparse=True)      # SAELens's COO-sparse option, if it runs here
        if "error" in probe:
            sparse_ok = False; r["saelens_sparse_error"] = probe["error"].split("\n")[0][:300]
            log(f"  SAELens use_sparse_activations=True fails here: {r['saelens_sparse_error'][:160]}")
        def ours():
            sae = make_sae("topk", S["d"], S["m"], k=S["k"], dtype=dtype_for(device), device=device)
            t, _ = train_timed(sae, acts, S["steps"], S["B"], S["warm"], device=device)
            return dict(value=S["B"] / t, step_s=t)
        def lens(sparse):
            def f():
                o = w.run(steps=S["steps"], warmup=S["warm"], sparse=sparse)
                if "error" in o: log("    SAELens error: " + o["error"][:200]); return None
                return dict(value=o["tokens_per_s"], step_s=S["B"] / o["tokens_per_s"])
            return f
        variants = {"saens": ours, "saelens": lens(False)}
        if sparse_ok: variants["saelens_sparse"] = lens(True)
        runs = interleave(variants, S["reps"])
    finally: w.close()
    r["runs"] = runs
    r["tokens_per_s"] = {k: med(v) for k, v in runs.items()}
    best = max(v for k, v in r["tokens_per_s"].items() if k != "saens")
    r["ratio_vs_saelens_default"] = r["tokens_per_s"]["saens"] / r["tokens_per_s"]["saelens"]
    r["ratio_vs_best_saelens"] = r["tokens_per_s"]["saens"] / best
    r["target"] = ">= 1.5x SAELens"; r["met"] = r["ratio_vs_best_saelens"] >= 1.5
    log(f"  tokens/s {({k: round(v) for k, v in r['tokens_per_s'].items()})}; saens/SAELens = {r['ratio_vs_best_saelens']:.2f}x")


# ------------------------------------------------------------------------------------------------ 2: MFU
def matmul_peak(device, n=None, tries=3):
    "Best FLOP/s of a few large square matmuls in the training dtype (the machine's practical matmul peak)."
    import torch
    dt = dtype_for(device); n = n or (8192 if str(device).startswith("cuda") else 4096)
    a = torch.randn(n, n, device=device, dtype=dt); b = torch.randn(n, n, device=device, dtype=dt)
    a @ b; sync(device); best = 0.0
    for _ in range(tries):
        t = time.perf_counter(); a @ b; sync(device); best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def step_flops(arch, B, d, m, k):
    """(issue's dense formula, what the step needs). Dense: encoder 2Bdm + decoder 2Bmd forward, backward 2x -> 12Bdm.
    Needed: the input gradient is never formed (x is data; b_dec reaches the encoder through its bias), so ReLU and
    JumpReLU need 10Bdm; our TopK path needs the encoder product 2Bdm plus 8Bkd for the gathered decoder and gradients."""
    dense = 12 * B * d * m
    need = 10 * B * d * m if arch != "topk" else 2 * B * d * m + 8 * B * k * d
    return dense, need


def bench2(S, device, res, args):
    import torch
    from saens.sae import make_sae
    acts, src = get_acts(S["d"], (S["steps"] + 1) * S["B"])
    r = res["2_mfu"] = dict(config=dict(d_in=S["d"], d_sae=S["m"], k=S["k"], batch=S["B"], dtype=str(dtype_for(device))),
                            activations=src, flops_formula=step_flops.__doc__)
    kw = dict(relu=dict(l1_coeff=1.0), topk=dict(k=S["k"]), jumprelu=dict())
    def arch_fn(arch):
        def f():   # the peak is measured right before and after the step timing, so both see the same machine
            sae = make_sae(arch, S["d"], S["m"], **kw[arch], dtype=dtype_for(device), device=device)
            p0 = matmul_peak(device)
            t, _ = train_timed(sae, acts, S["steps"], S["B"], S["warm"], device=device)
            peak = (p0 + matmul_peak(device)) / 2
            dense, need = step_flops(arch, S["B"], S["d"], S["m"], S["k"])
            return dict(value=t, peak=peak, mfu_needed=need / t / peak, mfu_dense_formula=dense / t / peak)
        return f
    runs = interleave({a: arch_fn(a) for a in kw}, S["reps"])
    r["archs"] = {}
    for a, v in runs.items():
        t = med(v)
        r["archs"][a] = dict(step_s=t, tokens_per_s=S["B"] / t, mfu_needed=med(v, "mfu_needed"),
                             mfu_dense_formula=med(v, "mfu_dense_formula"), matmul_peak_flops=med(v, "peak"), runs=v)
        log(f"  {a}: {t:.3f} s/step, MFU {100 * r['archs'][a]['mfu_needed']:.1f}% (needed FLOPs), "
            f"{100 * r['archs'][a]['mfu_dense_formula']:.1f}% (12Bdm); peak {med(v, 'peak') / 1e9:.0f} GFLOP/s")
    r["target"] = ">= 50% on CPU fp32"
    r["met"] = {a: v["mfu_needed"] >= 0.5 for a, v in r["archs"].items()}
    if args.profile:
        from torch.profiler import profile
        from saens.sae import AuxK      # a TopK SAE's dead-feature term (ignored by the others), as training passes it
        r["profile"] = {}
        for a in kw:
            sae = make_sae(a, S["d"], S["m"], **kw[a], dtype=dtype_for(device), device=device)
            x = acts[:S["B"]].to(device)
            opt = torch.optim.Adam(sae.parameters())
            dead = torch.zeros(S["m"], dtype=torch.bool, device=device)
            def step():
                out = sae.loss(x, aux=AuxK(dead)); opt.zero_grad(); out.loss.backward(); opt.step(); sync(device)
            step()
            with profile() as p: step(); step()
            tab = p.key_averages().table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=40)
            r["profile"][a] = tab; log(tab)


# ------------------------------------------------------------------------------------------------ 3: bagging
def bench3(S, device, res, args):
    from saens.sae import make_sae
    J, m, steps = S["bag_J"], S["bag_m"], S["bag_steps"]
    acts, src = get_acts(S["d"], (steps + 1) * S["B"])
    warm = min(S["warm"], steps - 1)
    r = res["3_bagging"] = dict(config=dict(arch="topk", J=J, d_in=S["d"], d_sae_per_member=m, k=S["k"], batch=S["B"],
                                            steps=steps), activations=src)
    def joint():   # what train_bagging does: one stacked SAE through train_sae
        t, wall = train_timed(make_sae("topk", S["d"], m, k=S["k"], n_members=J, dtype=dtype_for(device), device=device),
                              acts, steps, S["B"], warm, device=device)
        return dict(value=t, wall_s=wall)
    def separate():
        ts = [train_timed(make_sae("topk", S["d"], m, k=S["k"], seed=j, dtype=dtype_for(device), device=device),
                          acts, steps, S["B"], warm, device=device) for j in range(J)]
        return dict(value=sum(t for t, _ in ts), wall_s=sum(w for _, w in ts))
    runs = interleave({"joint": joint, "separate": separate}, S["reps"])
    r["runs"] = runs
    r["step_s"] = {k: med(v) for k, v in runs.items()}
    r["wall_s"] = {k: med(v, "wall_s") for k, v in runs.items()}
    r["speedup_joint_per_step"] = r["step_s"]["separate"] / r["step_s"]["joint"]
    r["speedup_joint_end_to_end"] = r["wall_s"]["separate"] / r["wall_s"]["joint"]
    log(f"  joint {r['step_s']['joint']:.3f} s/step vs {J} separate {r['step_s']['separate']:.3f} s: "
        f"{r['speedup_joint_per_step']:.2f}x per step, {r['speedup_joint_end_to_end']:.2f}x end to end (with init)")


# ------------------------------------------------------------------------------------------------ 4: boosting
def bench4(S, device, res, args):
    import torch
    from saens.sae import make_sae
    from saens import ensemble
    J, m, steps, B = S["boost_J"], S["boost_m"], S["boost_steps"], S["B"]
    acts, src = get_acts(S["d"], steps * B)      # one epoch: every training row is seen once per stage, as in the paper
    warm = min(S["warm"], steps - 1)
    r = res["4_boosting"] = dict(config=dict(arch="topk", J=J, d_in=S["d"], d_sae=m, k=S["k"], batch=B, steps_per_stage=steps,
                                             n_rows=len(acts)), activations=src)

    @torch.no_grad()
    def official_residual(members, x):   # re-run every earlier SAE inside every step, dense codes (the official scheme)
        for mm in members: x = x - mm.decode(mm.encode(x))
        return x

    state = {v: dict(members=[], resid=acts) for v in ("per_step", "official", "materialised")}
    times = {v: [] for v in state}
    for j in range(J):
        def stage(v):
            st = state[v]; prev = list(st["members"])
            sae = make_sae("topk", S["d"], m, k=S["k"], seed=j, dtype=dtype_for(device), device=device)
            t0 = time.perf_counter()
            if v == "materialised":
                if prev: st["resid"] = ensemble.next_residual(prev[-1], st["resid"], device=device)
                _, _ = train_timed(sae, st["resid"], steps, B, warm, device=device)
            else:
                fn = ensemble.boosting_residual if v == "per_step" else official_residual
                _, _ = train_timed(sae, acts, steps, B, warm, device=device,
                                   transform=(lambda x, prev=prev: fn(prev, x)) if prev else None)
            sync(device); dt = time.perf_counter() - t0
            sae.requires_grad_(False); st["members"].append(sae); times[v].append(dt)
            return dt
        order = list(state)[j % 3:] + list(state)[:j % 3]
        line = {v: stage(v) for v in order}
        log(f"    stage {j + 1}: " + ", ".join(f"{v} {line[v]:.2f}s" for v in state))
    # the fix computes the same residual: compare on held rows
    with torch.no_grad():
        x = acts[:1024].float()
        a = ensemble.boosting_residual(state["materialised"]["members"], x)
        b = state["materialised"]["resid"][:1024] - state["materialised"]["members"][-1](state["materialised"]["resid"][:1024])
        r["materialised_vs_per_step_residual_max_abs_diff"] = (a - b).abs().max().item()
    r["stage_s"] = times
    # stage 1 has no earlier member in any variant; the growth is measured over stages 2..J
    for v, ts in times.items():
        xs, ys = list(range(2, J + 1)), ts[1:]
        xb, yb = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - xb) * (y - yb) for x, y in zip(xs, ys)) / sum((x - xb) ** 2 for x in xs)
        r.setdefault("last_over_second", {})[v] = ts[-1] / ts[1]
        r.setdefault("last_over_first", {})[v] = ts[-1] / ts[0]
        r.setdefault("slope_s_per_stage", {})[v] = slope
        r.setdefault("growth_2_to_J", {})[v] = slope * (J - 2) / yb     # fitted change over stages 2..J / their mean
    r["target"] = "stage time flat in j (fitted growth over stages 2..J below 20% of the mean)"
    r["met"] = {v: abs(r["growth_2_to_J"][v]) < 0.2 for v in times}
    log(f"  stage {J} / stage 2: " + ", ".join(f"{v} {x:.2f}x" for v, x in r["last_over_second"].items())
        + "; fitted growth 2..J: " + ", ".join(f"{v} {100 * x:+.0f}%" for v, x in r["growth_2_to_J"].items()))


# ------------------------------------------------------------------------------------------------ 5: caching
def bench5(S, device, res, args):
    import torch
    from saens.models import load_model
    t0 = time.perf_counter(); lm = load_model(); load_s = time.perf_counter() - t0
    if device != "cpu": lm.model.to(device)
    g = torch.Generator().manual_seed(0)
    vocab = lm.model.config.vocab_size
    ids = torch.randint(3, vocab, (S["lm_batch"], S["lm_ctx"]), generator=g)
    ids[:, 0] = 0
    L, n_tok = S["lm_layer"], ids.numel()
    r = res["5_caching"] = dict(model=lm.name, layer=L, n_layers=lm.model.config.num_hidden_layers,
                                batch=list(ids.shape), load_s=load_s, tokens="random ids, <|endoftext|> first")
    def hook():
        t = time.perf_counter(); lm.resid_post(ids, L); sync(device); return dict(value=n_tok / (time.perf_counter() - t))
    def full():
        t = time.perf_counter()
        with torch.inference_mode(): lm.model(input_ids=ids.to(lm.device), output_hidden_states=True, use_cache=False)
        sync(device); return dict(value=n_tok / (time.perf_counter() - t))
    for _ in range(2): hook(); full()   # warm-up
    runs = interleave({"stop_at_hook": hook, "full_forward": full}, S["reps"] + 2)
    r["tokens_per_s"] = {k: med(v) for k, v in runs.items()}
    r["speedup"] = r["tokens_per_s"]["stop_at_hook"] / r["tokens_per_s"]["full_forward"]
    log(f"  tokens/s {({k: round(v) for k, v in r['tokens_per_s'].items()})}: {r['speedup']:.2f}x")


# ------------------------------------------------------------------------------------------------ 6: scale (children)
def child_conn(S, device):
    import torch
    from saens.coactivation import CoactivationCounter
    J, mj, k, N, bs = S["conn_members"], S["conn_m"], S["conn_k"], S["conn_tokens"], S["conn_batch"]
    m = J * mj
    g = torch.Generator().manual_seed(0)
    # TopK-like codes of an ensemble: each member picks k of its mj features per token, feature use ~ Zipf(1)
    w = (1.0 / torch.arange(1, mj + 1, dtype=torch.float32)).expand(bs, mj)
    idx = torch.cat([torch.cat([torch.multinomial(w[:min(bs, N - s)], k, replacement=False, generator=g) + j * mj
                                for j in range(J)], 1).int() for s in range(0, N, bs)])
    base = peak_rss_gib()
    t0 = time.perf_counter()
    cc = CoactivationCounter(m, device=device)
    rows = torch.arange(bs).repeat_interleave(J * k)
    for s in range(0, N, bs):
        b = idx[s:s + bs]; n = len(b)
        h = torch.sparse_coo_tensor(torch.stack([rows[:n * J * k], b.reshape(-1).long()]), torch.ones(n * J * k), (n, m),
                                    check_invariants=False)
        cc.update(h.to(device))
    conn = cc.connectivity(); sync(device)
    return dict(seconds=time.perf_counter() - t0, m=m, tokens=N, active_per_token=J * k,
                pairs_per_token=J * k * (J * k + 1) // 2, connectivity=conn, nnz=cc.nnz,
                peak_rss_gib=peak_rss_gib(),
                rss_before_gib=base, peak_gpu_gib=gpu_peak(device))


def child_stab(S, device, full=False):
    import torch
    from saens.metrics import stability, _decoders, _max_cos_both
    M, J, d = S["stab_M"], S["stab_members"], S["stab_d"]
    mj = S["stab_full_m"] if full else S["stab_m"]
    g = torch.Generator().manual_seed(0)
    decs = [torch.randn(J * mj, d, generator=g, device="cpu").to(device) for _ in range(M)]
    base = peak_rss_gib()
    t0 = time.perf_counter()
    rows = S["stab_rows"] if full else None
    if rows is None:
        val = stability(decs); sync(device)
        secs, extrap = time.perf_counter() - t0, None
    else:
        # paper scale on a CPU: the real memory footprint (all decoders, their unit copies, one similarity chunk), and
        # the time of `rows` rows of every pair, extrapolated linearly to all rows (the work is exactly linear in them)
        Ds = _decoders(decs)
        t1 = time.perf_counter()
        for b in range(M):
            for o in range(b + 1, M): _max_cos_both(Ds[b][:rows], Ds[o])
        sync(device)
        part = time.perf_counter() - t1
        secs = time.perf_counter() - t0
        extrap = (t1 - t0) + part * (len(Ds[0]) / rows)
        val = None
    return dict(seconds=secs, extrapolated_full_seconds=extrap, models=M, features_per_model=J * mj, d=d,
                rows_timed=rows, stability=val, peak_rss_gib=peak_rss_gib(),
                rss_before_gib=base, decoders_gib=M * J * mj * d * 4 / 2**30, peak_gpu_gib=gpu_peak(device))


def peak_rss_gib() -> float:
    """This process's peak resident memory: VmHWM (Linux; it starts afresh at exec, whereas ru_maxrss of a child
    starts from the parent's size at fork), else ru_maxrss."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"): return int(line.split()[1]) / 2**20
    except OSError: pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def gpu_peak(device):
    import torch
    return torch.cuda.max_memory_allocated() / 2**30 if str(device).startswith("cuda") else None


def run_child(kind, args):
    # never with the malloc tuning: glibc would keep freed memory, and the peak RSS would no longer be the peak in use
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--size", args.size, "--device", args.device,
           "--no-malloc-tuning"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode: return dict(error=(p.stderr or p.stdout)[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def bench6(S, device, res, args):
    r = res["6_scale"] = {}
    for kind in ("conn", "stab", "stab_full"):
        log(f"  {kind} (fresh process) ..."); o = run_child(kind, args); r[kind] = o
        log("    " + json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in o.items()})[:600])


# ------------------------------------------------------------------------------------------------ 7: streaming
def bench7(S, device, res, args):
    """Training one TopK SAE from the cache (rows already on disk) against from a fresh `ActivationStream` (the model
    runs inside the training run), same rows, same steps; plus the model's own tokens/s, so a reader sees the bound."""
    import shutil, torch
    from saens.activations import CacheConfig, cache_activations
    from saens.models import load_model
    from saens.sae import make_sae
    from saens.stream import ActivationStream
    lm = load_model(device=device)
    B, steps = S["B"], S["stream_steps"]
    cfg = CacheConfig(model=lm.name, hook=f"blocks.{S['lm_layer']}.hook_resid_post", ctx_len=S["lm_ctx"],
                      n_train_tokens=B * (steps + 2), n_eval_tokens=1024, dtype="bfloat16" if device == "cuda" else "float16",
                      model_dtype=str(lm.dtype).removeprefix("torch."))
    # the epoch holds more rows than the run reads: a second epoch would run the model again (a stream stores nothing)
    where = WORK / "bench7-cache"; shutil.rmtree(where, ignore_errors=True)
    t = time.perf_counter(); cache = cache_activations(lm, where, cfg, progress=False); cache_s = time.perf_counter() - t
    X = cache.train.tensor().to(device)
    r = res["7_streaming"] = dict(model=lm.name, model_dtype=str(lm.dtype), hook=cfg.hook, arch="topk", d=lm.d_model,
                                  m=S["m"], k=S["k"], batch=B, steps=steps, buffer_tokens=S["stream_buffer"],
                                  cache_build_tokens_per_s=(cache.train.n + cache.eval.n) / cache_s)
    streams = []
    def train(data):
        sae = make_sae("topk", lm.d_model, S["m"], k=S["k"], seed=0).to(device)
        t = time.perf_counter(); train_timed(sae, data, steps, B, 1, device=device); sync(device)
        return dict(value=B * steps / (time.perf_counter() - t))
    def streamed():
        streams.append(ActivationStream(lm, cfg, B, S["stream_buffer"])); return train(streams[-1])
    train(X); streamed()   # warm-up
    runs = interleave({"cached": lambda: train(X), "streamed": streamed}, S["reps"])
    r["tokens_per_s"] = {k: med(v) for k, v in runs.items()}
    r["ratio_streamed_over_cached"] = r["tokens_per_s"]["streamed"] / r["tokens_per_s"]["cached"]
    r["model_tokens_per_s"] = median([s.model_tokens_per_second() for s in streams])
    r["bound"] = "model" if r["model_tokens_per_s"] < r["tokens_per_s"]["cached"] else "SAE"
    shutil.rmtree(where, ignore_errors=True)
    log(f"  tokens/s {({k: round(v) for k, v in r['tokens_per_s'].items()})}: streamed/cached {r['ratio_streamed_over_cached']:.2f}x; "
        f"model alone {r['model_tokens_per_s']:,.0f} tokens/s, SAE alone {r['tokens_per_s']['cached']:,.0f}: bound by the {r['bound']}")


# ------------------------------------------------------------------------------------------------ summary
def summary(res) -> str:
    "The headline numbers of a results file as a Markdown table (what BENCHMARKS.md quotes)."
    rows, g = [], lambda *ks: _get(res, ks)
    r1 = g("1_vs_saelens", "tokens_per_s")
    if r1: rows.append(("1 TopK training, saens vs SAELens (tokens/s)",
                        f"{r1['saens']:,.0f} vs {r1['saelens']:,.0f}", f"{res['1_vs_saelens']['ratio_vs_best_saelens']:.2f}x", ">= 1.5x"))
    for a, v in (g("2_mfu", "archs") or {}).items():
        rows.append((f"2 MFU {a} (needed FLOPs / matmul peak)", f"{v['step_s'] * 1e3:.0f} ms/step, peak {v['matmul_peak_flops'] / 1e9:.0f} GFLOP/s",
                     f"{100 * v['mfu_needed']:.0f}% ({100 * v['mfu_dense_formula']:.0f}% of 12Bdm)", ">= 50% (CPU fp32)"))
    r3 = g("3_bagging")
    if r3 and "step_s" in r3:
        rows.append((f"3 bagging J={r3['config']['J']}: joint vs separate (s/step)", f"{r3['step_s']['joint']:.3f} vs {r3['step_s']['separate']:.3f}",
                     f"{r3['speedup_joint_per_step']:.2f}x", "ratio"))
    r4 = g("4_boosting")
    if r4 and "stage_s" in r4:
        for v, ts in r4["stage_s"].items():
            rows.append((f"4 boosting stage time, {v} (s, j = 1..{len(ts)})", " ".join(f"{t:.2f}" for t in ts),
                         f"stage {len(ts)}/stage 2 = {r4['last_over_second'][v]:.2f}x", "flat"))
    r5 = g("5_caching")
    if r5 and "speedup" in r5:
        t = r5["tokens_per_s"]
        rows.append((f"5 caching at layer {r5['layer']} of {r5['n_layers']} (tokens/s)", f"{t['stop_at_hook']:,.0f} vs {t['full_forward']:,.0f}",
                     f"{r5['speedup']:.2f}x", "ratio"))
    for k, name in (("conn", "connectivity"), ("stab", "stability"), ("stab_full", "stability")):
        o = g("6_scale", k)
        if not o or "error" in o: continue
        if k == "conn":
            what = f"6 connectivity, {o['m']:,} features, {o['tokens']:,} tokens x {o['active_per_token']} active"
        else:
            what = f"6 stability, {o['models']} models x {o['features_per_model']:,} features x d {o['d']}"
        if k == "conn": what += f" ({o['tokens'] * o['pairs_per_token'] / o['seconds'] / 1e6:.1f} M pair updates/s)"
        secs = f"{o['seconds']:.1f} s" if not o.get("extrapolated_full_seconds") else \
            f"{o['extrapolated_full_seconds']:.0f} s (extrapolated from {o['rows_timed']} rows)"
        rows.append((what, secs, f"peak RSS {o['peak_rss_gib']:.2f} GiB" + (f", GPU {o['peak_gpu_gib']:.2f} GiB" if o.get("peak_gpu_gib") else ""), "time, memory"))
    r7 = g("7_streaming")
    if r7 and "tokens_per_s" in r7:
        t = r7["tokens_per_s"]
        rows.append((f"7 TopK training streamed vs cached, {r7['m']:,} features (tokens/s)", f"{t['streamed']:,.0f} vs {t['cached']:,.0f}",
                     f"{r7['ratio_streamed_over_cached']:.2f}x; model alone {r7['model_tokens_per_s']:,.0f} tokens/s: {r7['bound']}-bound", "ratio"))
    head = "| benchmark | measured | result | target |\n|---|---|---|---|\n"
    return head + "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)


def _get(d, ks):
    for k in ks:
        if not isinstance(d, dict) or k not in d: return None
        d = d[k]
    return d


# ------------------------------------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="1,2,3,4,5,6,7", help="comma-separated benchmark numbers")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--size", default="ci", choices=list(SIZES))
    ap.add_argument("--out", default=None, help="JSON file (default bench/results-<device>-<size>.json)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per variant (default: the size's)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--profile", action="store_true", help="benchmark 2: also record torch.profiler top ops")
    ap.add_argument("--no-malloc-tuning", dest="malloc", action="store_false",
                    help="leave glibc's malloc as it is (both saens and the SAELens worker)")
    ap.add_argument("--summary", default=None, metavar="JSON", help="print the summary table of a results file and exit")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.summary: print(summary(json.loads(Path(args.summary).read_text()))); return
    if args.malloc:
        from saens.memory import tune_malloc   # what the `saens` command does (chapter 38)
        tune_malloc()
    import torch
    if args.threads: torch.set_num_threads(args.threads)
    S = dict(SIZES[args.size])
    if args.reps: S["reps"] = args.reps
    if args.device == "cuda" and not torch.cuda.is_available(): sys.exit("--device cuda: no CUDA device here")
    if args.child:
        out = {"conn": lambda: child_conn(S, args.device), "stab": lambda: child_stab(S, args.device),
               "stab_full": lambda: child_stab(S, args.device, full=True)}[args.child]()
        print(json.dumps(out)); return
    os.environ.setdefault("TQDM_DISABLE", "1")
    out = Path(args.out or HERE / f"results-{args.device}-{args.size}.json")
    res = dict(command="python bench/run.py " + " ".join(sys.argv[1:]), date=datetime.datetime.now().isoformat(timespec="seconds"),
               torch=torch.__version__, python=platform.python_version(), machine=platform.machine(),
               cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(), device=args.device, size=args.size,
               malloc_tuning=args.malloc, load_avg_start=os.getloadavg(),
               gpu=torch.cuda.get_device_name() if args.device == "cuda" else None, sizes=S)
    benches = {1: bench1, 2: bench2, 3: bench3, 4: bench4, 5: bench5, 6: bench6, 7: bench7}
    t_all = time.perf_counter()
    for i in [int(s) for s in args.only.split(",") if s.strip()]:
        log(f"== benchmark {i}: {benches[i].__name__}")
        t0 = time.perf_counter()
        try: benches[i](S, args.device, res, args)
        except Exception as e:
            import traceback; traceback.print_exc(); res[f"{i}_error"] = f"{type(e).__name__}: {e}"
        res.setdefault("bench_seconds", {})[str(i)] = time.perf_counter() - t0
        gc.collect()
        out.write_text(json.dumps(res, indent=1, default=str))
    res["total_seconds"] = time.perf_counter() - t_all; res["load_avg_end"] = os.getloadavg()
    out.write_text(json.dumps(res, indent=1, default=str))
    log("\n" + summary(res) + "\n")
    log(f"wrote {out} ({res['total_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
