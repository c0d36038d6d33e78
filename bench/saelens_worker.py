"""Benchmark 1's other side: train SAELens's TopK SAE on the activations `run.py` saved, and report tokens/s.

Runs inside bench/.venv-saelens (made by bench/saelens_env.sh), never imports saens. It is a small server so that
`run.py` can interleave its repetitions with saens's: it reads one JSON request per line on stdin,
    {"steps": 8, "warmup": 2, "sparse": false, "seed": 0}
trains a fresh SAE for `steps` steps through SAELens's own trainer (`SAETrainer.fit`), and answers one JSON line
    {"tokens_per_s": ..., "step_s": [...], "sparse": false}
where the rate counts the steps after `warmup` (timed from the moments the trainer asks for its next batch).
"""
import argparse, ctypes, json, sys, time

p = argparse.ArgumentParser()
p.add_argument("--acts", required=True, help=".safetensors file with a float32 tensor 'acts' [n, d_in]")
p.add_argument("--d-sae", type=int, required=True)
p.add_argument("--k", type=int, required=True)
p.add_argument("--batch", type=int, required=True)
p.add_argument("--threads", type=int, default=0)
p.add_argument("--device", default="cpu")
p.add_argument("--autocast", action="store_true", help="bf16 autocast (SAELens's mixed precision; for GPUs)")
p.add_argument("--malloc-tuning", action="store_true", help="same glibc setting as run.py (see BENCHMARKS.md)")
a = p.parse_args()

if a.malloc_tuning:
    libc = ctypes.CDLL("libc.so.6"); libc.mallopt(-3, 1 << 30); libc.mallopt(-1, 2**31 - 1)

import torch
from safetensors.torch import load_file
import sae_lens
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer
from sae_lens.config import SAETrainerConfig

if a.threads: torch.set_num_threads(a.threads)
acts = load_file(a.acts)["acts"].to(a.device)
n, d_in = acts.shape


def batches(seed, stamps):
    "The same deterministic shuffled batches every repetition; records when the trainer asks for each one."
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=g)
        for i in range(n // a.batch):
            stamps.append(time.perf_counter())
            yield acts[perm[i * a.batch:(i + 1) * a.batch].to(acts.device)]


def run(steps, warmup, sparse, seed):
    torch.manual_seed(seed)
    cfg = TopKTrainingSAEConfig(d_in=d_in, d_sae=a.d_sae, k=a.k, use_sparse_activations=sparse,
                                dtype="float32", device=a.device)
    sae = TopKTrainingSAE(cfg)
    stamps = []
    tcfg = SAETrainerConfig(total_training_samples=steps * a.batch, train_batch_size_samples=a.batch,
                            lr=3e-4, lr_end=3e-5, device=a.device, autocast=a.autocast)
    trainer = SAETrainer(tcfg, sae, batches(seed, stamps))
    trainer.fit()
    if a.device.startswith("cuda"): torch.cuda.synchronize()
    stamps.append(time.perf_counter())
    step_s = [t1 - t0 for t0, t1 in zip(stamps, stamps[1:])]
    timed = step_s[warmup:]
    return dict(tokens_per_s=a.batch * len(timed) / sum(timed), step_s=step_s, sparse=sparse)


print(json.dumps(dict(ready=True, sae_lens=sae_lens.__version__, torch=torch.__version__,
                      threads=torch.get_num_threads())), flush=True)
for line in sys.stdin:
    if not line.strip(): continue
    req = json.loads(line)
    try: out = run(req["steps"], req.get("warmup", 1), req.get("sparse", False), req.get("seed", 0))
    except Exception as e:
        import traceback; traceback.print_exc(); out = dict(error=f"{type(e).__name__}: {e}")
    print(json.dumps(out), flush=True)
