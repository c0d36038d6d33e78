#!/usr/bin/env python
"""A one-shot check of saens on a lent GPU: every architecture in fp32 and bf16, streamed training from the embedded
model, bagging, boosting, the paper-shape metrics and the torch.distributed self-check, in under 8 minutes.

    bash bench/gpu_check.sh [--cpu] [DIR]              (the usual way in; the top of that file says what runs how long)
    python bench/gpu_check.py [--device cuda|cpu] [--out DIR] [--only archs,stream,...]

Without a GPU, `--device cpu` (or SAENS_GPU_CHECK_DEVICE=cpu) runs the same code at tiny sizes, including what would be
the CUDA-only branches (bf16 autocast; the distributed self-check over gloo instead of NCCL), so CI runs every line
(tests/test_gpu_check.py).

How it runs. This file is a driver: it starts one fresh Python process per check (`--run NAME`), so a check that
crashes, hangs or leaves the GPU in a bad state cannot take the others with it. Each check has a time budget: at its
end the check's process raises `BudgetExceeded` (SIGALRM) and records what it has; the driver kills it
`GRACE_S` later if it is stuck. The driver also holds a total deadline (`TOTAL_S`), so the whole run ends in time.

What it writes (into DIR): `results.json` (the environment, then one record per check: `status` "ok", "failed" or
"skipped: why"; `wall_s` and `budget_s`; `gpu_peak_gib`, null on the CPU; `result`; `error` with type, message and
traceback), `summary.txt` (what it prints at the end), and per check `NAME.json` and `NAME.log` (its output). It exits
with status 1 if any check failed.

The checks reuse bench/run.py (imported as a module): its trainer timing (`train_timed`), benchmarks 3 (bagging) and
4 (boosting), and the connectivity and stability children of benchmark 6. An architecture that fails under bf16
autocast is a finding about saens, recorded as such (`findings`); it does not fail the check, a failure in fp32 does.
"""
from __future__ import annotations

import argparse, datetime, importlib.util, inspect, json, math, os, platform, signal, socket, subprocess, sys
import tempfile, time, traceback
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load_bench():
    "bench/run.py as a module (it is a script, not part of a package)."
    spec = importlib.util.spec_from_file_location("saens_bench_run", HERE / "run.py")
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    return module

bench = _load_bench()
log = bench.log


# ------------------------------------------------------------------------------------------------ sizes and budgets
CHECKS = ("archs", "stream", "bagging", "boosting", "paper_shapes", "distributed")
HOOK = "blocks.9.hook_resid_post"

# benchmarks 3, 4, 6 of bench/run.py read their sizes from one dict; on the CPU every shape is tiny
_TINY = dict(bench.SIZES["ci"], d=64, k=8, B=256, warm=1, reps=2,
             bag_J=4, bag_m=128, bag_steps=3, boost_J=3, boost_m=128, boost_steps=3,
             conn_members=8, conn_m=1280, conn_k=8, conn_tokens=512, conn_batch=256,    # 10,240 features: the sparse count
             stab_M=4, stab_members=8, stab_m=256, stab_d=64, stab_full_m=256, stab_rows=None)
_PAPER = bench.SIZES["paper"]
SIZES = {
    "cuda": dict(
        archs=dict(d=768, m=16128, B=10_000, k=128, warm=3, steps=23, pool_batches=4),  # 20 timed steps
        stream=dict(ctx_len=128, B=4096, buffer_tokens=2**18, fills=2, m=16128, k=128, warm=3, lm_contexts=64, lm_reps=5),
        bagging=dict(_PAPER),                                  # J=8 x 16,128 features, d 768, k 128, batch 4096
        boosting=dict(_PAPER),                                 # 8 stages x 16,128 features, 20 steps each
        # 8 x 16,128 features as in the paper; 16,384 tokens instead of run.py's 65,536 to fit the budget
        # (the count's time is linear in the tokens: `pair_updates_per_s` is the rate)
        paper_shapes=dict(_PAPER, conn_m=16128, conn_tokens=16384, stab_m=16128, stab_full_m=16128),
        distributed=dict(dtype="float64"),
    ),
    "cpu": dict(
        archs=dict(d=64, m=512, B=512, k=8, warm=1, steps=4, pool_batches=2),
        stream=dict(ctx_len=32, B=128, buffer_tokens=496, fills=2, m=512, k=8, warm=1, lm_contexts=2, lm_reps=2),
        bagging=_TINY, boosting=_TINY, paper_shapes=_TINY,
        distributed=dict(dtype="float64"),
    ),
}
# seconds; the sum over checks, plus GRACE_S each, stays under TOTAL_S, which with the smoke test stays under 9.5 minutes
BUDGET_S = {
    "cuda": dict(env=20, archs=70, stream=85, bagging=55, boosting=55, paper_shapes=85, distributed=50),
    "cpu": dict(env=30, archs=45, stream=150, bagging=30, boosting=30, paper_shapes=30, distributed=60),
}
TOTAL_S = {"cuda": 420, "cpu": 420}   # on a GPU bench/gpu_smoke.py runs first, for at most 150 s: 570 s in all
GRACE_S = 5          # a check's process is killed this long after its budget if it has not stopped by itself
MIN_BUDGET_S = 10    # a check with less time left than this is not started


# ------------------------------------------------------------------------------------------------ helpers
class BudgetExceeded(TimeoutError):
    "Raised in a check's process when its time budget is spent (SIGALRM)."

class Skipped(Exception):
    "A check that cannot run here, for a reason that is not a failure of saens."

class SanityError(AssertionError):
    "A check ran, but a number it measured is impossible (not positive, not finite)."

def require(ok: bool, what: str):
    if not ok: raise SanityError(what)

def positive(x) -> bool: return isinstance(x, (int, float)) and math.isfinite(x) and x > 0

def error_record(e: BaseException) -> dict:
    "An exception as JSON: type, message, the end of the traceback."
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return dict(type=type(e).__name__, message=str(e), traceback=tb[-4000:])

def write_json(path: Path, obj):
    "Write atomically: a reader never sees half a file."
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str)); tmp.replace(path)

_peaks = [0.0]   # GPU peaks (GiB) of this process before the last reset

def reset_gpu_peak(device):
    "Start a new peak-memory measurement (`bench.gpu_peak`), keeping the old peak for `process_gpu_peak`."
    import torch
    if str(device).startswith("cuda"):
        _peaks.append(bench.gpu_peak(device)); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()

def process_gpu_peak(device) -> float | None:
    "The largest GPU memory allocated by this process, over all resets (None on the CPU)."
    return max(*_peaks, bench.gpu_peak(device)) if str(device).startswith("cuda") else None

def git(*args) -> str | None:
    try: return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError): return None

def autocast_loss(device: str):
    """`train_sae`'s one-process operations with the SAE's loss (its forward pass) under `torch.autocast` in bf16: the
    weights and Adam stay fp32, backward runs outside the autocast region, as autocast recommends."""
    import torch
    from saens.train import SingleProcess
    device_type = torch.device(device).type
    class AutocastLoss(SingleProcess):
        def loss(self, sae, x, **kw):
            with torch.autocast(device_type, dtype=torch.bfloat16): return sae.loss(x, **kw)
    return AutocastLoss()

def sae_kwargs(arch: str, k: int) -> dict:
    "`k` for the architectures that take one (the TopK family), nothing for the others: their own defaults."
    from saens.sae import SAE_CLASSES
    return dict(k=k) if "k" in inspect.signature(SAE_CLASSES[arch].__init__).parameters else {}

def lifted(fn, key, S, device, res):
    "Run a bench/run.py benchmark (it writes `res[key]`) and put its record into `res`, also when it stops midway."
    out = {}
    try: fn(S, device, out, None)
    finally: res.update(out.get(key, {}))


# ------------------------------------------------------------------------------------------------ env
def check_env(S, device, res):
    "Versions, the GPU and its free memory, CPUs, and the saens commit."
    import torch, saens
    res.update(python=platform.python_version(), platform=platform.platform(), torch=torch.__version__,
               cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
               cpu_count=os.cpu_count(), cpus_usable=len(os.sched_getaffinity(0)), torch_threads=torch.get_num_threads(),
               load_avg=os.getloadavg(), saens_version=getattr(saens, "__version__", None),
               saens_commit=git("rev-parse", "HEAD") or os.environ.get("SAENS_COMMIT"),   # a copy without .git: say it
               saens_uncommitted_changes=bool(git("status", "--porcelain", "--", "saens")),
               device=device, cuda_available=torch.cuda.is_available(),
               gpu=None, gpu_count=0, gpu_capability=None, gpu_memory_free_gib=None, gpu_memory_total_gib=None,
               bf16_supported=None, matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32, nvidia_driver=None)
    if device == "cuda":
        free, total = torch.cuda.mem_get_info()
        res.update(gpu=torch.cuda.get_device_name(), gpu_count=torch.cuda.device_count(),
                   gpu_capability=".".join(map(str, torch.cuda.get_device_capability())),
                   gpu_memory_free_gib=free / 2**30, gpu_memory_total_gib=total / 2**30,
                   bf16_supported=torch.cuda.is_bf16_supported())
        try:
            res["nvidia_driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                                  capture_output=True, text=True, timeout=20).stdout.strip() or None
        except (OSError, subprocess.SubprocessError): pass
    gpu = f"{res['gpu']}, {res['gpu_memory_free_gib']:.1f} of {res['gpu_memory_total_gib']:.1f} GiB free" if res["gpu"] else "no GPU"
    res["summary"] = [f"torch {res['torch']} (CUDA {res['cuda']}), {gpu}, {res['cpus_usable']} CPUs, "
                      f"saens {(res['saens_commit'] or 'commit unknown')[:10]}{' + changes' if res['saens_uncommitted_changes'] else ''}"]


# ------------------------------------------------------------------------------------------------ 1: archs
def check_archs(S, device, res):
    """A few training steps of every architecture in `SAE_CLASSES` with saens's trainer, fp32 and bf16 autocast (fp32
    master weights): time per step after the warm-up, tokens/s, first and last loss, peak GPU memory."""
    from saens.sae import SAE_CLASSES
    d, m, B, k = S["d"], S["m"], S["B"], S["k"]
    x, src = bench.get_acts(d, S["pool_batches"] * B)
    x = x.to(device)
    res["config"] = dict(d_in=d, d_sae=m, batch=B, k=k, warmup_steps=S["warm"], timed_steps=S["steps"] - S["warm"],
                         activations=src, bf16="torch.autocast(bfloat16) around SAE.loss; fp32 weights, Adam and backward")
    runs, findings, failed_fp32 = res.setdefault("runs", {}), res.setdefault("findings", []), []
    res["summary"] = []
    for arch in sorted(SAE_CLASSES):
        for precision in ("fp32", "bf16"):
            name = f"{arch} {precision}"
            try:
                runs[name] = run = _train_arch(arch, precision, x, S, device)
                line = (f"{name}: {run['step_s'] * 1e3:.1f} ms/step, {run['tokens_per_s']:,.0f} tokens/s, loss "
                        f"{run['loss_first']:.4g} -> {run['loss_final']:.4g} (computed in {run['loss_dtype']})")
                if not run["loss_finite"]: findings.append(f"archs: {name}: the final loss is not finite")
            except BudgetExceeded: raise
            except Exception as e:
                runs[name] = dict(status="failed", error=error_record(e),
                                  loss_finite=False if "the loss contains" in str(e) else None)   # train_sae's NaN guard
                line = f"{name}: FAILED {type(e).__name__}: {str(e)[:200]}"
                if precision == "bf16": findings.append(f"archs: {arch} fails under bf16 autocast: {type(e).__name__}: {str(e)[:300]}")
                else: failed_fp32.append(name)
            log("  " + line); res["summary"].append(line)
    if failed_fp32: raise RuntimeError(f"fp32 training failed for {', '.join(failed_fp32)} (see result.runs)")
    for name, run in runs.items():
        if run["status"] == "ok": require(positive(run["tokens_per_s"]), f"{name}: tokens/s {run['tokens_per_s']} is not positive")

def _train_arch(arch: str, precision: str, x, S: dict, device: str) -> dict:
    "Train one architecture in one precision on the rows `x` (on the device); its numbers."
    import torch
    from saens.sae import make_sae
    from saens.train import SingleProcess
    comm = autocast_loss(device) if precision == "bf16" else SingleProcess()
    sae = make_sae(arch, S["d"], S["m"], **sae_kwargs(arch, S["k"]), device=device)       # fp32 weights
    sae.eval()
    with torch.no_grad(): probe = comm.loss(sae, x[:256])       # which dtypes autocast gives (eval: no state changes)
    reset_gpu_peak(device)
    step_s, wall = bench.train_timed(sae, x, S["steps"], S["B"], S["warm"], device=device, comm=comm)
    first, last = sae.history[0], sae.history[-1]
    return dict(status="ok", step_s=step_s, tokens_per_s=S["B"] / step_s, wall_s=wall, loss_first=first["loss"],
                loss_final=last["loss"], loss_finite=math.isfinite(last["loss"]), ev_final=last["ev"], l0_final=last["l0"],
                loss_dtype=str(probe.loss.dtype).removeprefix("torch."), x_hat_dtype=str(probe.x_hat.dtype).removeprefix("torch."),
                gpu_peak_gib=bench.gpu_peak(device))


# ------------------------------------------------------------------------------------------------ 2: stream
def check_stream(S, device, res):
    """SmolLM2-135M on the device: tokens/s of the model up to the hook, and of TopK training from `ActivationStream`
    over two buffer fills (so the timed steps include a refill); a fresh stream repeats its first batch."""
    try: from saens.stream import ActivationStream
    except ImportError as e: raise Skipped(f"saens.stream not available ({e})")
    import torch
    from saens.activations import CacheConfig, CorpusNotAvailable, news_documents
    from saens.models import load_model
    from saens.sae import make_sae
    t0 = time.perf_counter(); lm = load_model("smollm2-135m", device=device); res["load_s"] = time.perf_counter() - t0
    res["model"] = repr(lm); log(f"  loaded {lm} in {res['load_s']:.1f} s")
    L, B = lm.hook_layer(HOOK), S["B"]

    # the model up to the hook, alone: random ids (the compute does not depend on them), after one warm-up pass
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, lm.model.config.vocab_size, (S["lm_contexts"], S["ctx_len"]), generator=g)
    lm.resid_post(ids, L); bench.sync(device)
    times = []
    for _ in range(S["lm_reps"]):
        t = time.perf_counter(); lm.resid_post(ids, L); bench.sync(device); times.append(time.perf_counter() - t)
    res["model_to_hook"] = dict(layer=L, n_layers=lm.n_layers, batch=list(ids.shape), dtype=str(lm.dtype),
                                tokens_per_s=ids.numel() / bench.median(times))
    log(f"  model up to block {L}: {res['model_to_hook']['tokens_per_s']:,.0f} tokens/s")

    try: next(iter(news_documents())); corpus = "default"
    except CorpusNotAvailable: corpus = "python-stdlib"            # the news half of the default corpus is missing here
    cfg = CacheConfig(model="smollm2-135m", hook=HOOK, corpus=corpus, ctx_len=S["ctx_len"], n_train_tokens=S["buffer_tokens"],
                      dtype="bfloat16", model_dtype=str(lm.dtype).removeprefix("torch."))
    make = lambda cfg: ActivationStream(lm, cfg, batch_size=B, buffer_tokens=S["buffer_tokens"], seed=0)
    rows_per_fill = make(cfg).fill_contexts(1) * cfg.rows_per_ctx   # the buffer, rounded up to whole forward batches
    n_train = (S["fills"] + 1) * rows_per_fill                      # distinct tokens: the timed steps stay in one epoch
    cfg = replace(cfg, n_train_tokens=n_train, n_eval_tokens=n_train // 10)
    stream = make(cfg)
    steps = max(S["fills"] * (rows_per_fill // B), S["warm"] + 2)
    res["config"] = dict(hook=HOOK, corpus=corpus, ctx_len=cfg.ctx_len, batch=B, buffer_tokens=S["buffer_tokens"],
                         rows_per_fill=rows_per_fill, n_train_tokens=n_train, stream_dtype=cfg.dtype, steps=steps,
                         warmup_steps=S["warm"], sae=dict(arch="topk", d_in=lm.d_model, d_sae=S["m"], k=S["k"]))
    first = stream(0).clone()       # fill 0, which training then reuses
    log(f"  {stream}: first fill in {stream.stats['model_seconds']:.1f} s; training {steps} steps")

    sae = make_sae("topk", lm.d_model, S["m"], k=S["k"], device=device)
    reset_gpu_peak(device)
    step_s, wall = bench.train_timed(sae, stream, steps, B, S["warm"], device=device)
    last = sae.history[-1]
    res["train"] = dict(step_s=step_s, tokens_per_s=B / step_s, tokens_per_s_with_init=steps * B / wall, wall_s=wall,
                        loss_final=last["loss"], loss_finite=math.isfinite(last["loss"]), ev_final=last["ev"],
                        fills=stream.stats["fills"], gpu_peak_gib=bench.gpu_peak(device))
    res["fill_tokens_per_s"] = stream.model_tokens_per_second()    # corpus, tokenizer and model, per buffer fill

    again = make(cfg)(0)
    res["repeat_max_abs_diff"] = (again.float() - first.float()).abs().max().item()
    res["repeat_bitwise_equal"] = bool(torch.equal(again, first))
    if not res["repeat_bitwise_equal"]:
        res["findings"] = [f"stream: a fresh stream's batch 0 differs from the first one by up to {res['repeat_max_abs_diff']:.3g}"]
    res["summary"] = [f"model up to block {L}: {res['model_to_hook']['tokens_per_s']:,.0f} tokens/s; buffer fills "
                      f"(corpus + tokenizer + model): {res['fill_tokens_per_s']:,.0f} tokens/s",
                      f"TopK {S['m']:,} features trained from the stream: {res['train']['tokens_per_s']:,.0f} tokens/s over "
                      f"{steps} steps, {res['train']['fills']} fills; loss {last['loss']:.4g}; "
                      f"fresh stream repeats batch 0: {res['repeat_bitwise_equal']}"]
    for what in ("model_to_hook", "train"):
        require(positive(res[what]["tokens_per_s"]), f"{what}: tokens/s {res[what]['tokens_per_s']} is not positive")
    require(positive(res["fill_tokens_per_s"]), f"fill tokens/s {res['fill_tokens_per_s']} is not positive")
    require(res["train"]["loss_finite"], f"the final loss {last['loss']} is not finite")
    require(res["train"]["fills"] >= S["fills"], f"training saw {res['train']['fills']} buffer fills, expected {S['fills']}")


# ------------------------------------------------------------------------------------------------ 3, 4: bagging, boosting
def check_bagging(S, device, res):
    "Benchmark 3 of bench/run.py: J TopK members trained jointly (one stacked SAE) vs J separate runs."
    lifted(bench.bench3, "3_bagging", S, device, res)
    res["summary"] = [f"J={res['config']['J']} x {res['config']['d_sae_per_member']:,} features: joint "
                      f"{res['step_s']['joint'] * 1e3:.1f} ms/step vs separate {res['step_s']['separate'] * 1e3:.1f} ms: "
                      f"{res['speedup_joint_per_step']:.2f}x per step, {res['speedup_joint_end_to_end']:.2f}x end to end"]
    for v in ("joint", "separate"): require(positive(res["step_s"][v]), f"{v}: {res['step_s'][v]} s/step")

def check_boosting(S, device, res):
    "Benchmark 4 of bench/run.py: wall time of each boosting stage, for three ways to compute the residual."
    lifted(bench.bench4, "4_boosting", S, device, res)
    res["summary"] = [f"{v}: stage s " + " ".join(f"{t:.2f}" for t in ts) + f" (last / second {res['last_over_second'][v]:.2f}x)"
                      for v, ts in res["stage_s"].items()]
    for v, ts in res["stage_s"].items():
        require(len(ts) == S["boost_J"] and all(positive(t) for t in ts), f"{v}: stage times {ts}")
    require(math.isfinite(res["materialised_vs_per_step_residual_max_abs_diff"]), "the residuals differ by a non-finite amount")


# ------------------------------------------------------------------------------------------------ 5: paper shapes
def check_paper_shapes(S, device, res):
    """Benchmark 6's children of bench/run.py in this process: stability of 4 ensembles and connectivity of one,
    each of 8 x 16,128 features on the GPU; time, peak GPU memory (null on the CPU) and peak RSS."""
    import gc
    for kind, fn in (("stability", bench.child_stab), ("connectivity", bench.child_conn)):
        reset_gpu_peak(device)
        res[kind] = o = fn(S, device)
        log(f"  {kind}: " + json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in o.items()}))
        gc.collect()
    st, cn = res["stability"], res["connectivity"]
    pairs = st["models"] * (st["models"] - 1) // 2
    st["tflop_per_s"] = pairs * 2 * st["features_per_model"] ** 2 * st["d"] / st["seconds"] / 1e12
    cn["pair_updates_per_s"] = cn["tokens"] * cn["pairs_per_token"] / cn["seconds"]
    gpu = lambda o: f", GPU peak {o['peak_gpu_gib']:.2f} GiB" if o["peak_gpu_gib"] is not None else ""
    res["summary"] = [f"stability, {st['models']} x {st['features_per_model']:,} features x d {st['d']}: {st['seconds']:.1f} s "
                      f"({st['tflop_per_s']:.3g} TFLOP/s){gpu(st)}",
                      f"connectivity, {cn['m']:,} features, {cn['tokens']:,} tokens x {cn['active_per_token']} active: "
                      f"{cn['seconds']:.1f} s ({cn['pair_updates_per_s'] / 1e6:,.0f} M pair updates/s){gpu(cn)}"]
    for o in (st, cn): require(positive(o["seconds"]), f"{o['seconds']} s")
    require(math.isfinite(st["stability"]) and -1 <= st["stability"] <= 1, f"stability {st['stability']}")
    require(0 <= cn["connectivity"] <= 1, f"connectivity {cn['connectivity']}")


# ------------------------------------------------------------------------------------------------ 6: distributed
def check_distributed(S, device, res):
    """`python -m saens.distributed check` inside a process group of one: NCCL on the GPU, gloo on the CPU. The runs of
    the self-check over the group must equal those of the plain single-process trainer, and a resumed run the whole one."""
    import torch
    import torch.distributed as dist
    from saens import distributed
    # a resumed run must equal the whole one bitwise, and on CUDA index_add_ (the fused TopK backward) and cuBLAS may
    # reorder their sums from run to run unless asked not to; this check runs in its own process, so nothing else is slowed
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    res["deterministic_algorithms"] = True
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    rank, world = distributed.init_distributed(device)    # main() below finds the group and joins it, then leaves it
    res.update(backend=dist.get_backend(), world_size=world, dtype=S["dtype"])
    with tempfile.TemporaryDirectory() as d:
        res["exit_status"] = distributed.main(["check", d, "--device", device, "--dtype", S["dtype"]])
        check = json.loads((Path(d) / "check.json").read_text()) if (Path(d) / "check.json").exists() else {}
    res.update(resume_exact=check.get("resume_exact"), max_differences=check.get("max_differences"))
    worst = max((max(v) for v in (res["max_differences"] or {}).values()), default=None)
    res["summary"] = [f"{res['backend']}, world size {world}, {S['dtype']}: largest difference from one process {worst}, "
                      f"resumed run bitwise equal: {res['resume_exact']}"]
    expected = "nccl" if device == "cuda" else "gloo"
    require(res["backend"] == expected, f"backend {res['backend']}, expected {expected}")
    require(res["exit_status"] == 0, f"saens.distributed check exited with {res['exit_status']} (see the log)")


CHECK_FNS = dict(env=check_env, archs=check_archs, stream=check_stream, bagging=check_bagging, boosting=check_boosting,
                 paper_shapes=check_paper_shapes, distributed=check_distributed)


# ------------------------------------------------------------------------------------------------ one check, in its process
def run_check(name: str, device: str, out: Path, budget: int) -> int:
    "Run check `name` within `budget` seconds and write its record to `out/NAME.json`, whatever happens."
    rec = dict(name=name, status="running", device=device, budget_s=budget, wall_s=None, gpu_peak_gib=None,
               result={}, error=None)
    def over_budget(signum, frame): raise BudgetExceeded(f"{name} ran past its budget of {budget} s")
    signal.signal(signal.SIGALRM, over_budget); signal.alarm(budget)
    t0 = time.perf_counter()
    try:
        import torch
        if name != "paper_shapes":     # as bench/run.py: never for peak-memory measurements (glibc would keep freed memory)
            from saens.memory import tune_malloc; tune_malloc()
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"no CUDA device here (torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
                               "use --cpu for the CPU fallback")
        CHECK_FNS[name](SIZES[device].get(name, {}), device, rec["result"])
        rec["status"] = "ok"
    except Skipped as e: rec["status"] = f"skipped: {e}"
    except Exception as e:
        traceback.print_exc(); rec.update(status="failed", error=error_record(e))
    finally:
        signal.alarm(0)
        rec["wall_s"] = time.perf_counter() - t0
        if device == "cuda" and "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
            rec["gpu_peak_gib"] = process_gpu_peak(device)
        write_json(out / f"{name}.json", rec)
    return 0


# ------------------------------------------------------------------------------------------------ the driver
def start_check(name: str, device: str, out: Path, budget: int) -> dict:
    "Run one check in a fresh process, its output in `out/NAME.log`; its record, or a failure record if it died."
    rec_file, log_file = out / f"{name}.json", out / f"{name}.log"
    rec_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--run", name, "--device", device, "--out", str(out),
           "--budget", str(budget)]
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    with open(log_file, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try: rc = p.wait(timeout=budget + GRACE_S)
        except subprocess.TimeoutExpired: p.kill(); p.wait(); rc = None
    wall = time.perf_counter() - t0
    if rec_file.exists(): rec = json.loads(rec_file.read_text())
    else:
        tail = log_file.read_text(errors="replace")[-3000:]
        why = (f"killed {budget + GRACE_S} s after it started: it did not stop at its budget of {budget} s" if rc is None
               else f"its process ended with status {rc} without writing a record")
        rec = dict(name=name, status="failed", device=device, budget_s=budget, wall_s=wall, gpu_peak_gib=None, result={},
                   error=dict(type="Killed" if rc is None else "ProcessDied", message=why, traceback=tail))
    rec.update(process_wall_s=wall, exit_status=rc, log=log_file.name)    # process_wall_s: with Python's start, imports
    return rec

def summary(res: dict) -> str:
    "What the driver prints at the end: one block per check, then the findings and the failures."
    count = lambda what: sum(c["status"].startswith(what) for c in res["checks"].values())
    lines = [f"saens GPU check on {res['device']}, {res['started']}: environment {res['env']['status']}; "
             f"{len(res['checks'])} checks: {count('ok')} ok, {count('failed')} failed, {count('skipped')} skipped; "
             f"{res['total_wall_s']:.0f} s of at most {res['total_budget_s']} s"]
    for name, c in [("env", res["env"]), *res["checks"].items()]:
        wall = f"{c['wall_s']:.1f}" if c.get("wall_s") is not None else "-"
        lines.append(f"\n{name:13s} {c['status'][:60]:8s}  {wall} s of {c['budget_s']} s"
                     + (f", GPU peak {c['gpu_peak_gib']:.2f} GiB" if c.get("gpu_peak_gib") is not None else ""))
        lines += [f"    {s}" for s in c["result"].get("summary", [])]
        if c.get("error"): lines.append(f"    ERROR {c['error']['type']}: {c['error']['message'][:500]}")
    if res["findings"]: lines += ["\nfindings:"] + [f"  - {f}" for f in res["findings"]]
    if res["failed"]: lines += ["\nfailed: " + ", ".join(res["failed"])]
    return "\n".join(lines)

def drive(device: str, out: Path, only: list[str]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter(); deadline = t_start + TOTAL_S[device]
    res = dict(command=" ".join([Path(sys.executable).name, *sys.argv]), device=device,
               started=datetime.datetime.now().isoformat(timespec="seconds"), total_budget_s=TOTAL_S[device],
               sizes={n: SIZES[device].get(n) for n in only}, env=None, checks={}, findings=[], failed=[])
    for name in ["env", *only]:
        budget = min(BUDGET_S[device][name], int(deadline - time.perf_counter()) - GRACE_S)
        log(f"[{name}] budget {budget} s ...")
        if budget < MIN_BUDGET_S:
            rec = dict(name=name, status="failed", device=device, budget_s=budget, wall_s=0.0, gpu_peak_gib=None, result={},
                       process_wall_s=0.0, error=dict(type="NoTimeLeft", traceback="",
                                                      message=f"not started: {budget} s left of the total {TOTAL_S[device]} s"))
        else: rec = start_check(name, device, out, budget)
        log(f"[{name}] {rec['status']} in {rec['process_wall_s']:.1f} s"
            + (f": {rec['error']['type']}: {rec['error']['message'][:300]}" if rec.get("error") else ""))
        if name == "env": res["env"] = rec
        else: res["checks"][name] = rec
        res["findings"] += rec["result"].get("findings", [])
        if rec["status"] == "failed": res["failed"].append(name)
        res["total_wall_s"] = time.perf_counter() - t_start
        write_json(out / "results.json", res)
    text = summary(res)
    (out / "summary.txt").write_text(text + "\n")
    log("\n" + text + f"\n\nwrote {out / 'results.json'}")
    return 1 if res["failed"] else 0

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cuda", "cpu"), default=os.environ.get("SAENS_GPU_CHECK_DEVICE") or "cuda",
                    help="cuda (the default, or $SAENS_GPU_CHECK_DEVICE) or cpu: the tiny CPU fallback")
    ap.add_argument("--out", default=None, help="results folder (default: $OUT, else bench/gpu-check-<date>)")
    ap.add_argument("--only", default=",".join(CHECKS), help=f"comma-separated checks (default: all, {','.join(CHECKS)})")
    ap.add_argument("--run", choices=list(CHECK_FNS), help=argparse.SUPPRESS)     # inside a check's own process
    ap.add_argument("--budget", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or os.environ.get("OUT") or HERE / f"gpu-check-{stamp}")
    if args.run: sys.exit(run_check(args.run, args.device, out, args.budget or BUDGET_S[args.device][args.run]))
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(only) - set(CHECKS)
    if unknown: ap.error(f"unknown checks {sorted(unknown)}; choose from {', '.join(CHECKS)}")
    sys.exit(drive(args.device, out, only))


if __name__ == "__main__":
    main()
