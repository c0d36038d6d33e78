"""The memory pre-check (chapter 8's `model_bytes`, from `CODE_BYTES`) against what training really holds: each
architecture's widest unstacked SAE and its stacked members are trained for a few steps in a fresh process, and the
resident memory those steps add at their peak (Linux's VmHWM, reset just before) must be within 25% of the estimate."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from saens.config import Experiment
from saens.experiments import model_bytes
from saens.sae import SAE_CLASSES

if not Path("/proc/self/clear_refs").exists():
    pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak resident memory", allow_module_level=True)

D, WIDTH, J, B = 64, 8192, 8, 4096

SCRIPT = textwrap.dedent("""
    import sys, torch
    from saens.sae import make_sae
    from saens.train import TrainConfig, train_sae
    arch, method, D, WIDTH, J, B = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
    def mem(field):
        for line in open("/proc/self/status"):
            if line.startswith(field): return int(line.split()[1]) * 1024
    kw = dict(k=32) if arch in ("topk", "batchtopk") else {}
    sae = make_sae(arch, D, WIDTH, **kw) if method == "expanded" else make_sae(arch, D, WIDTH // J, n_members=J, **kw)
    x = torch.randn(2 * B, D)
    open("/proc/self/clear_refs", "w").write("5")          # the peak starts again from here
    before = mem("VmRSS:")
    train_sae(sae, x, TrainConfig(n_tokens=4 * B, batch_size=B, progress=False, n_init_samples=1024,
                                  lr_warmup_steps=0, sparsity_warmup_steps=0))
    print(mem("VmHWM:") - before)
""")


@pytest.mark.parametrize("arch", sorted(SAE_CLASSES))
@pytest.mark.parametrize("method", ["expanded", "bagging"])
def test_the_estimate_is_within_a_quarter_of_the_peak(arch, method):
    exp = Experiment(name="memory", profile="ci", model="-", hook="-", corpus="-", ctx_len=2, n_train_tokens=B,
                     n_eval_tokens=B, cache_dtype="float32", arch=arch, d_sae=WIDTH // J, sae_kwargs={}, J=J, d_in=D,
                     train=dict(n_tokens=4 * B, batch_size=B))
    p = subprocess.run([sys.executable, "-c", SCRIPT, arch, method, str(D), str(WIDTH), str(J), str(B)],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert p.returncode == 0, p.stderr[-2000:]
    peak, estimate = int(p.stdout.split()[-1]), model_bytes(exp, method, J)
    assert 0.75 < peak / estimate < 1.25, f"{arch} {method}: {peak / 2**20:.0f} MiB at the peak, estimated {estimate / 2**20:.0f} MiB"
