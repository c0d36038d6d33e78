"""The SAELens round trip with the real `sae-lens` package, in its own environment.

Our exports (one SAE per architecture, and a bagging ensemble of each kind that folds into one SAE, plus the member
folders of TopK bagging and boosting) are loaded by SAELens's `SAE.load_from_disk`, and their codes and
reconstructions must equal ours to 1e-5. SAEs built and saved by SAELens itself must load with `from_saelens` to
the same function. The environment is made by bench/saelens_env.sh (or reused: $SAENS_SAELENS_ENV, else
bench/.venv-saelens); if `sae-lens` cannot be installed the test fails and says so: it never skips.
"""
import json, os, subprocess, sys, warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from saens.ensemble import Ensemble
from saens.sae import BatchTopKSAE, JumpReLUSAE, ReLUSAE, TopKSAE
from saens.saelens import NotOneSAEWarning, from_saelens, to_saelens

ROOT = Path(__file__).resolve().parents[1]
D, M = 16, 24


def saelens_python() -> Path:
    "The SAELens environment's python, made now if it does not exist yet."
    env = Path(os.environ.get("SAENS_SAELENS_ENV") or ROOT / "bench" / ".venv-saelens")
    py = env / "bin" / "python"
    if not py.exists():
        r = subprocess.run(["bash", str(ROOT / "bench" / "saelens_env.sh")], capture_output=True, text=True,
                           env={**os.environ, "SAENS_PYTHON": sys.executable})
        if r.returncode != 0 or not py.exists():
            pytest.fail(f"could not install sae-lens into {env} with bench/saelens_env.sh (exit {r.returncode}):\n"
                        f"{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return py


def _trained_looking(sae, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.b_enc.copy_(0.3 * torch.randn(sae.b_enc.shape, generator=g))
        sae.b_dec.copy_(0.3 * torch.randn(sae.b_dec.shape, generator=g))
        if isinstance(sae, JumpReLUSAE): sae.log_threshold.copy_(torch.rand(sae.d_sae, generator=g).log())
        if isinstance(sae, BatchTopKSAE): sae.threshold.fill_(0.4)
    return sae


def make(arch, seed):
    cls = dict(relu=ReLUSAE, topk=TopKSAE, jumprelu=JumpReLUSAE, batchtopk=BatchTopKSAE)[arch]
    kw = dict(k=4) if arch in ("topk", "batchtopk") else {}
    return _trained_looking(cls(D, M, seed=seed, **kw), seed)


def test_saelens_round_trip(tmp_path):
    py = saelens_python()
    x = torch.randn(64, D, generator=torch.Generator().manual_seed(0))
    save_file({"x": x}, str(tmp_path / "x.safetensors"))
    ours = {f"sae_{a}": make(a, i) for i, a in enumerate(("relu", "topk", "jumprelu", "batchtopk"))}
    ours.update(
        bag_relu=Ensemble([make("relu", 10), make("relu", 11), make("relu", 12)], weights=[0.5, 0.3, 0.2]),
        bag_jumprelu=Ensemble([make("jumprelu", 13), make("jumprelu", 14)]),
        bag_batchtopk=Ensemble([make("batchtopk", 15), make("batchtopk", 16)]),
        bag_mixed=Ensemble([make("relu", 17), make("jumprelu", 18), make("batchtopk", 19)], weights=[0.2, 0.3, 0.5]))
    members = dict(bag_topk=Ensemble([make("topk", 20), make("topk", 21)]),
                   boost=Ensemble([make("topk", 22), make("topk", 23), make("relu", 24)], mode="boosting"))
    load, ensembles = {}, {}
    for name, obj in ours.items():
        p = to_saelens(obj, tmp_path / name, model_name="toy", hook_name="blocks.0.hook_resid_post", context_size=128)
        assert not (p / "saens_ensemble.json").exists()
        load[name] = str(p)
    for name, e in members.items():
        with pytest.warns(NotOneSAEWarning):
            p = to_saelens(e, tmp_path / name)
        for j in range(len(e)): load[f"{name}.member_{j:02d}"] = str(p / f"member_{j:02d}")
        ensembles[name] = str(p)
    make_specs = {f"theirs_{a}": dict(arch=a, folder=str(tmp_path / f"theirs_{a}"))
                  for a in ("standard", "topk", "jumprelu", "batchtopk")}
    make_specs["theirs_standard_nob"] = dict(arch="standard", folder=str(tmp_path / "theirs_standard_nob"), apply_b_dec=False)
    job = dict(x=str(tmp_path / "x.safetensors"), out=str(tmp_path / "out.safetensors"), load=load, ensembles=ensembles,
               make=make_specs)
    (tmp_path / "job.json").write_text(json.dumps(job))
    r = subprocess.run([str(py), str(ROOT / "tests" / "saelens_worker.py"), str(tmp_path / "job.json")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"the SAELens worker failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    got = load_file(str(tmp_path / "out.safetensors"))

    def close(a, b, what):
        assert a.shape == b.shape, (what, a.shape, b.shape)
        err = (a - b).abs().max().item()
        assert err <= 1e-5, f"{what}: SAELens and saens differ by {err:.2e}"

    with torch.no_grad():
        # 1. SAELens reads our exports and computes what we compute
        for name, obj in ours.items():
            close(got[f"{name}.codes"], obj.encode(x), f"{name} codes")
            close(got[f"{name}.recon"], obj(x), f"{name} reconstruction")
        # the member folders: each member is exact, and SAELens's members combined as the manifest says give the ensemble
        for name, e in members.items():
            for j, m in enumerate(e.members): close(got[f"{name}.member_{j:02d}.codes"], m.encode(x), f"{name} member {j}")
            close(got[f"{name}.codes"], e.encode(x), f"{name} combined codes")
            close(got[f"{name}.recon"], e(x), f"{name} combined reconstruction")
        # 2. SAEs built and saved by SAELens load with from_saelens to the same function
        for name in make_specs:
            sae = from_saelens(tmp_path / name)
            close(sae.encode(x), got[f"{name}.codes"], f"{name} codes")
            close(sae(x), got[f"{name}.recon"], f"{name} reconstruction")
            assert sae.cfg.model_name == "toy-model" and sae.cfg.hook_name == "blocks.0.hook_resid_post"
    assert type(from_saelens(tmp_path / "theirs_batchtopk")) is JumpReLUSAE
