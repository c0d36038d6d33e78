"""Distributed training (saens.distributed): two gloo processes launched by torchrun on the CPU give the
single-process results for the same seeds: bagging split by members, and data-parallel training of one SAE
for every architecture, boosting, and a resumed run. A batch that the processes cannot split is refused."""
import json
import os
import subprocess
import sys

import pytest
import torch

from saens.distributed import CHECK_CFG, CHECK_D_SAE, CHECK_SAES, DataParallel, check_rows, member_block
from saens.ensemble import train_bagging, train_boosting
from saens.sae import make_sae
from saens.train import TrainConfig, train_sae


def torchrun(*args, nproc=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "saens.distributed", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def single_process_reference():
    "The self-check's runs in this process, written out with the single-process API only."
    X, cfg, f64 = check_rows(), TrainConfig(**CHECK_CFG), dict(dtype=torch.float64)
    ref = {arch: train_sae(make_sae(arch, 16, CHECK_D_SAE, seed=3, **kw, **f64), X, cfg) for arch, kw in CHECK_SAES.items()}
    ref = {a: (s.state_dict(), s.history) for a, s in ref.items()}
    states = lambda ens: {f"{j}.{k}": v for j, m in enumerate(ens.members) for k, v in m.state_dict().items()}
    bag = train_bagging("topk", CHECK_D_SAE, X, cfg, J=3, seed=10, k=3, **f64)
    ref["bagging J=3"] = (states(bag), [{k: v for k, v in h.items() if k != "loss"} for h in bag.members[0].history])
    boost = train_boosting("topk", CHECK_D_SAE, X, cfg, J=2, seed=20, k=3, **f64)
    ref["boosting J=2"] = (states(boost), [h for m in boost.members for h in m.history])
    ref["topk, resumed"] = ref["topk"]
    return ref


def test_two_processes_equal_one_process(tmp_path):
    r = torchrun("check", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    got = torch.load(tmp_path / "distributed.pt", weights_only=True)
    ref = single_process_reference()
    assert set(got) == set(ref)
    for name, (state, history) in ref.items():
        g_state, g_history = got[name]
        assert set(g_state) == set(state), name
        for k, v in state.items():   # float64: only the order of additions differs
            assert torch.allclose(g_state[k], v, rtol=0, atol=1e-12), (name, k, (g_state[k] - v).abs().max())
        assert len(g_history) == len(history), name
        for a, b in zip(g_history, history):
            assert a["step"] == b["step"], (name, a, b)
            for k in ("dead", "l0"): assert abs(a[k] - b[k]) < 1e-6, (name, k, a, b)   # float32 means of counts
            for k in ("loss", "mse"):
                if k in b: assert abs(a[k] - b[k]) < 1e-12, (name, k, a, b)
            assert abs(a["ev"] - b["ev"]) < 1e-6, (name, a, b)   # EV comes from float32 batch means
    # AuxK really ran: features were dead at some step (of every TopK-family run, and of bagging)
    for name in ("topk", "batchtopk", "bagging J=3", "boosting J=2"): assert max(h["dead"] for h in ref[name][1]) > 0, name
    chk = json.loads((tmp_path / "check.json").read_text())
    assert chk["world_size"] == 2 and chk["resume_exact"] is True


def test_batch_that_cannot_be_split_is_refused():
    r = torchrun("check", "--batch-size", "129")
    assert r.returncode != 0
    assert "batch_size=129 cannot be split equally over 2 processes" in r.stderr, r.stderr[-3000:]


def test_data_parallel_needs_a_process_group():
    with pytest.raises(ValueError, match="launch with torchrun"):
        DataParallel()


def test_member_blocks_partition_the_members():
    for J in range(1, 17):
        for W in range(1, 10):
            blocks = [member_block(J, W, r) for r in range(W)]
            assert [j for b in blocks for j in b] == list(range(J))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


RUN_METHODS = r'''
import sys, torch
from saens.distributed import distributed_trainers, init_distributed, launched_comm, barrier, cleanup, local_device
from saens.experiments import Experiment, train_methods
init_distributed()
torch.manual_seed(0)
F = torch.linalg.qr(torch.randn(16, 16))[0][:8]
X = (torch.rand(4096, 8) * (torch.rand(4096, 8) < 0.25)) @ F
exp = Experiment(name="known", profile="ci", model="m", hook="h", corpus="-", ctx_len=2, n_train_tokens=4096, n_eval_tokens=0,
                 cache_dtype="float32", arch="topk", d_sae=8, sae_kwargs=dict(k=2), J=2, n_ensembles=1, expanded_J=(2,),
                 train=dict(n_tokens=16 * 128, batch_size=128, lr=1e-2, lr_warmup_steps=2, sparsity_warmup_steps=0, dead_window=5000))
comm = launched_comm()
train_methods(exp, X, out=sys.argv[1], progress=False, log=lambda *a: None, trainers=distributed_trainers(comm), comm=comm,
              device=str(local_device()))
barrier(); cleanup()
'''


def test_a_distributed_run_writes_what_one_process_writes(tmp_path):
    """`saens train` over processes is `train_methods` with other trainers: the run folder it leaves holds the same
    files, the same SAE metadata (what model and hook each SAE reads) and the same training histories as one process."""
    script = tmp_path / "run_methods.py"; script.write_text(RUN_METHODS)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one")], env=env, capture_output=True, text=True, timeout=180)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
                          str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=180)
    assert two.returncode == 0, two.stdout + two.stderr[-3000:]
    files = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and "checkpoints" not in p.parts)
    assert files(tmp_path / "one") == files(tmp_path / "two")
    for name in ("expanded-J2-seed0", "bagging-J2-seed0", "boosting-J2-seed0"):
        h1, h2 = (json.loads((tmp_path / r / name / "history.json").read_text()) for r in ("one", "two"))
        assert h1["batch_size"] == h2["batch_size"] and len(h1["curves"]) == len(h2["curves"]) > 0, name
        for c1, c2 in zip(h1["curves"], h2["curves"]):
            assert [r["step"] for r in c1] == [r["step"] for r in c2] and len(c1) > 0, name
            assert all(abs(a["ev"] - b["ev"]) < 1e-4 for a, b in zip(c1, c2)), name
    cfgs = sorted((tmp_path / "two").rglob("config.json"))
    assert cfgs and all("hook_name" in f.read_text() for f in cfgs)     # what each SAE reads is saved with it
    meta = lambda f: {k: v for k, v in json.loads(f.read_text()).items() if k != "sha256"}   # the weights' hash differs with
    for f in cfgs:                                                                          # the weights (within 1e-4 EV, above)
        assert meta(f) == meta(tmp_path / "one" / f.relative_to(tmp_path / "two")), f
