"""The GPU path's device rules, checked on a CPU: a run trains on a GPU when one is present without being told, the device
never changes which run folder a run uses, finished models leave the training device, and evaluation on a device gives
the records it gives where the models sit."""
import math

import torch

from saens.ensemble import train_bagging
from saens.experiments import load_config, train_methods
from saens.metrics import evaluate_models
from saens.sae import make_sae
from saens.train import TrainConfig, resolve_device


def test_resolve_device(monkeypatch):
    assert resolve_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None) == "cuda"


def test_a_run_trains_on_the_gpu_by_default_and_keeps_its_models_off_it(tmp_path, monkeypatch):
    "With `device` unset and a GPU present, every trainer is asked for `cuda`; what it returns is moved to the CPU."
    monkeypatch.setenv("SAENS_HOME", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    exp = load_config("quickstart", "ci"); exp.n_ensembles = 1
    asked = []

    def fake(arch, d_sae, data, cfg, J=1, seed=0, **kw):
        asked.append(cfg.device)
        m = make_sae(arch, 576, d_sae, seed=seed, **kw) if J == 1 else train_bagging(
            arch, d_sae, torch.randn(4096, 576), TrainConfig(n_tokens=1024, batch_size=512, progress=False), J=J, seed=seed, **kw)
        sent = []
        orig = m.to
        m.to = lambda *a, **k: (sent.append(a[0] if a else k.get("device")), orig(*a, **k))[1]
        m.sent = sent
        return m

    try:
        models = train_methods(exp, None, ["expanded", "bagging"], progress=False, log=lambda s: None,
                               trainers=dict(expanded=fake, bagging=fake))
        assert torch.backends.cuda.matmul.allow_tf32             # TF32 on for a GPU run
    finally: torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    assert asked == ["cuda", "cuda"]
    assert all("cpu" in m.sent for m in models.values())         # finished models leave the GPU


def test_the_device_is_not_part_of_the_run_folder():
    exp = load_config("pythia-160m", "laptop")
    base = exp.fingerprint()
    for device in ("cuda", "cuda:0", "cpu"):
        exp.train["device"] = device
        assert exp.fingerprint() == base, device


def test_evaluation_on_a_device_equals_evaluation_where_the_models_are():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(3000, 16, generator=g).half()                 # held-out rows stay in their storage dtype
    models = {("expanded", 1, s): make_sae("topk", 16, 32, k=4, seed=s) for s in range(3)}
    here = evaluate_models(models, X)
    there = evaluate_models(models, X, device="cpu")
    for a, b in zip(here, there):
        for k, v in a.items():
            if isinstance(v, float) and not math.isnan(v): assert v == b[k], k
    assert all(m.W_dec.device.type == "cpu" for m in models.values())
