"""Proposition 3.1 through `Ensemble`: the ensemble's reconstruction equals the weighted combination of the
members' reconstructions, for every architecture, both modes, random J and arbitrary non-negative weights."""
import pytest
import torch

from saens.ensemble import Ensemble
from saens.sae import make_sae

ARCHS = {"relu": {}, "topk": dict(k=5), "jumprelu": dict(init_threshold=0.05), "batchtopk": dict(k=5)}


def member(arch, seed, dtype, d_in=24):
    g = torch.Generator().manual_seed(seed)
    s = make_sae(arch, d_in, int(torch.randint(16, 64, (1,), generator=g)), seed=seed, dtype=dtype, **ARCHS[arch])
    with torch.no_grad():
        s.b_enc.copy_(0.1 * torch.randn(s.b_enc.shape, generator=g, dtype=dtype))
        s.b_dec.copy_(torch.randn(s.b_dec.shape, generator=g, dtype=dtype))
        if arch == "batchtopk":
            s.threshold.fill_(0.1)
    return s


def long_way(members, weights, mode, x):
    out, r = 0, x
    for w, m in zip(weights, members):
        g = m(r if mode == "boosting" else x)
        out = out + w * g
        r = r - w * g
    return out


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("mode", ["bagging", "boosting"])
@pytest.mark.parametrize("arch", list(ARCHS) + ["mixed"])
def test_ensemble_is_one_sae(arch, mode, dtype, tol):
    g = torch.Generator().manual_seed(hash((arch, mode)) % 2**31)
    for trial in range(5):
        J = int(torch.randint(1, 9, (1,), generator=g))
        archs = [arch] * J if arch != "mixed" else [list(ARCHS)[int(torch.randint(4, (1,), generator=g))] for _ in range(J)]
        members = [member(a, 100 * trial + j, dtype) for j, a in enumerate(archs)]
        weights = (3 * torch.rand(J, generator=g, dtype=torch.float64)).tolist()
        if trial == 0:
            weights = None  # the defaults: 1/J for bagging, 1 for boosting
        ens = Ensemble(members, weights, mode)
        w = ens.weights
        x = torch.randn(64, 24, generator=g, dtype=dtype)
        with torch.no_grad():
            expected = long_way(members, w, mode, x)
            codes = ens.encode(x)
            # one SAE: concatenated dictionary, weighted codes, summed bias
            one_sae = codes @ torch.cat([m.W_dec for m in members]) + sum(a * m.b_dec for a, m in zip(w, members))
            scale = expected.abs().max().item() + 1
            assert (ens(x) - expected).abs().max().item() <= tol * scale
            assert (one_sae - expected).abs().max().item() <= tol * scale
        assert codes.shape == (64, sum(m.d_sae for m in members))
        # Remark 3.2: the dictionary keeps unit-norm features, the weights live in the codes
        assert torch.allclose(ens.W_dec.norm(dim=-1), torch.ones((), dtype=dtype), atol=tol * 10)
        # L0 of the ensemble is the sum of the members' L0 (weights > 0)
        if all(a > 0 for a in w):
            member_l0 = sum((c != 0).sum() for c in ens.member_codes(x))
            assert (codes != 0).sum() == member_l0


def test_zero_weight_member_contributes_nothing():
    ms = [member("relu", j, torch.float64) for j in range(3)]
    x = torch.randn(10, 24, dtype=torch.float64)
    with torch.no_grad():
        full = Ensemble(ms, [0.5, 0.0, 0.5])(x)
        two = Ensemble([ms[0], ms[2]], [0.5, 0.5])(x)
    assert torch.allclose(full, two, atol=1e-12)
