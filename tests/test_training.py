"""Training: determinism, exact resume for stacked (bagging) SAEs, joint bagging == separate runs, and
ground-truth feature recovery on synthetic data."""
from dataclasses import asdict

import torch

from saens.ensemble import train_bagging
from saens.metrics import coverage
from saens.sae import make_sae
from saens.train import TrainConfig, train_sae


def sparse_data(n, d, n_true, active, seed=0, orthogonal=False):
    g = torch.Generator().manual_seed(seed)
    if orthogonal:
        F = torch.linalg.qr(torch.randn(d, d, generator=g))[0][:n_true]
    else:
        F = torch.randn(n_true, d, generator=g)
        F /= F.norm(dim=-1, keepdim=True)
    idx = torch.rand(n, n_true, generator=g).argsort(-1)[:, :active]
    c = torch.zeros(n, n_true).scatter(-1, idx, torch.rand(n, active, generator=g) + 0.5)
    return c @ F, F


def test_topk_recovers_ground_truth_features():
    # 24 orthogonal features in R^32, 3 active per sample: a TopK SAE should find (nearly) all of them
    X, F = sparse_data(20_000, 32, 24, 3, orthogonal=True)
    cfg = TrainConfig(n_tokens=1500 * 256, batch_size=256, lr=3e-3, lr_warmup_steps=20, sparsity_warmup_steps=0,
                      progress=False, dead_window=20_000)
    sae = train_sae(make_sae("topk", 32, 48, k=3, seed=0), X, cfg)
    assert coverage(sae.W_dec, F, 0.95) >= 0.9


def test_relu_recovers_ground_truth_features():
    X, F = sparse_data(20_000, 32, 24, 3, orthogonal=True)
    cfg = TrainConfig(n_tokens=1500 * 256, batch_size=256, lr=3e-3, lr_warmup_steps=20, sparsity_warmup_steps=100,
                      progress=False)
    sae = train_sae(make_sae("relu", 32, 48, l1_coeff=0.1, seed=0), X, cfg)
    assert coverage(sae.W_dec, F, 0.95) >= 0.9


def test_stacked_resume_is_exact(tmp_path):
    X, _ = sparse_data(4096, 16, 32, 3)
    cfg = TrainConfig(n_tokens=30 * 128, batch_size=128, lr=1e-3, lr_warmup_steps=3, sparsity_warmup_steps=5,
                      progress=False, dead_window=500)
    ref = train_sae(make_sae("jumprelu", 16, 32, n_members=3, sparsity_coeff=0.01, seed=4), X, cfg)
    c = TrainConfig(**{**asdict(cfg), "checkpoint_dir": str(tmp_path), "checkpoint_every": 7})

    class Stop(Exception):
        pass

    def stop(step, info):
        if step == 17:
            raise Stop

    try:
        train_sae(make_sae("jumprelu", 16, 32, n_members=3, sparsity_coeff=0.01, seed=4), X, c, on_step=stop)
    except Stop:
        pass
    resumed = train_sae(make_sae("jumprelu", 16, 32, n_members=3, sparsity_coeff=0.01, seed=4), X, c)
    for k, v in ref.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k


def test_joint_bagging_equals_separate_runs():
    X, _ = sparse_data(4096, 16, 32, 3)
    cfg = TrainConfig(n_tokens=40 * 128, batch_size=128, lr=1e-3, lr_warmup_steps=3, sparsity_warmup_steps=5,
                      progress=False, dead_window=500)
    for arch, kw in [("relu", dict(l1_coeff=0.05)), ("batchtopk", dict(k=3))]:
        bag = train_bagging(arch, 24, X, cfg, J=3, seed=50, **kw)
        for j in range(3):
            alone = train_sae(make_sae(arch, 16, 24, seed=50 + j, **kw), X, cfg)
            for k, v in alone.state_dict().items():
                assert torch.allclose(bag.members[j].state_dict()[k], v, atol=1e-4), (arch, j, k)
