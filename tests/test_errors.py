"""Bad input gets a ValueError that names the problem, and loses nothing."""
from dataclasses import asdict

import pytest
import torch
from torch import nn

from saens.ensemble import Ensemble, load_ensemble, save_ensemble, train_bagging
from saens.metrics import connectivity, explained_variance, stability
from saens.sae import load_sae, make_sae, save_sae
from saens.train import CHECKPOINT_NAME, TrainConfig, train_sae

CFG = TrainConfig(n_tokens=30 * 64, batch_size=64, lr=1e-3, lr_warmup_steps=2, sparsity_warmup_steps=2, progress=False)


def test_wrong_width():
    sae = make_sae("topk", 8, 16, k=2)
    with pytest.raises(ValueError, match="d_in=8"):
        sae.encode(torch.randn(4, 9))
    with pytest.raises(ValueError, match="d_in=8"):
        train_sae(sae, torch.randn(256, 7), CFG)
    with pytest.raises(ValueError, match="d_in=8"):
        Ensemble([sae])(torch.randn(3, 5))


def test_nan_in_a_batch_names_the_step(tmp_path):
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(64, 8, generator=g) for _ in range(30)]
    batches[12][5, 2] = float("inf")
    cfg = TrainConfig(**{**asdict(CFG), "checkpoint_dir": str(tmp_path), "checkpoint_every": 1, "n_init_samples": 128})
    with pytest.raises(ValueError, match="step 12: the activation batch contains 1 NaN/Inf"):
        train_sae(make_sae("relu", 8, 16), lambda step: batches[step], cfg)
    # nothing lost: the checkpoint of the last good step is there and loads
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["step"] == 12
    # NaN in the data used for initialisation is reported too
    with pytest.raises(ValueError, match="initialisation sample contains"):
        train_sae(make_sae("relu", 8, 16), torch.full((256, 8), float("nan")), CFG)


def test_mismatched_members():
    a = make_sae("relu", 8, 16)
    with pytest.raises(ValueError, match="different d_in"):
        Ensemble([a, make_sae("relu", 9, 16)])
    with pytest.raises(ValueError, match="not an SAE"):
        Ensemble([a, nn.Linear(8, 16)])
    with pytest.raises(ValueError, match="dtype"):
        Ensemble([a, make_sae("relu", 8, 16, dtype=torch.float64)])


def test_truncated_files(tmp_path):
    sae = make_sae("jumprelu", 8, 16)
    save_sae(sae, tmp_path / "sae")
    f = tmp_path / "sae" / "sae.safetensors"
    f.write_bytes(f.read_bytes()[:-20])
    with pytest.raises(ValueError, match="sae.safetensors is truncated or corrupt"):
        load_sae(tmp_path / "sae")
    X = torch.randn(2048, 8)
    cfg = TrainConfig(**{**asdict(CFG), "checkpoint_dir": str(tmp_path / "run")})
    train_sae(make_sae("relu", 8, 16), X, cfg)
    ck = tmp_path / "run" / CHECKPOINT_NAME
    ck.write_bytes(ck.read_bytes()[:200])
    with pytest.raises(ValueError, match="checkpoint .* is truncated or corrupt"):
        train_sae(make_sae("relu", 8, 16), X, cfg)


def test_saved_ensemble_with_a_truncated_member(tmp_path):
    ens = train_bagging("topk", 16, torch.randn(2048, 8), CFG, J=2, k=2)
    save_ensemble(ens, tmp_path / "ens")
    assert torch.allclose(load_ensemble(tmp_path / "ens")(torch.ones(1, 8)), ens(torch.ones(1, 8)))
    f = tmp_path / "ens" / "member_01" / "sae.safetensors"
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(ValueError, match="member_01/sae.safetensors is truncated"):
        load_ensemble(tmp_path / "ens")


def test_metric_errors():
    with pytest.raises(ValueError, match="x_hat"):
        explained_variance(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="NaN"):
        connectivity(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="at least 2"):
        stability([torch.randn(4, 3)])


class _Planted:
    "A pickle payload: loading it calls `open(marker, 'w')`, as an attacker's would call `os.system`."
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_checkpoint_runs_nothing(tmp_path):
    """A checkpoint.pt left in a run folder by someone else is refused before anything in it runs, by the
    library and by `saens train`; the same file read without the restriction would have created the marker."""
    from saens.train import load_checkpoint
    marker = tmp_path / "ran"
    ck = tmp_path / "run" / CHECKPOINT_NAME
    ck.parent.mkdir()
    torch.save(dict(sae_config=_Planted(str(marker)), step=_Planted(str(marker))), ck)
    with pytest.raises(ValueError, match=r"checkpoint .*checkpoint.pt asks to build Python objects .* refused and nothing in it ran"):
        load_checkpoint(ck)
    cfg = TrainConfig(**{**asdict(CFG), "checkpoint_dir": str(ck.parent)})
    with pytest.raises(ValueError, match="refused and nothing in it ran"):
        train_sae(make_sae("relu", 8, 16), torch.randn(2048, 8), cfg)
    assert not marker.exists()
    assert ck.exists()                              # refused, not deleted: the user decides
    import pickle
    pickle.loads(pickle.dumps(_Planted(str(marker))))   # the payload is real: an unrestricted unpickler runs it
    assert marker.exists()
