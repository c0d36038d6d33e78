"""Hand saens SAEs and ensembles to SAEBench's own code and check that it takes them.

Runs in bench/.venv-saebench (made by bench/saebench_env.sh):  bench/.venv-saebench/bin/python bench/saebench_check.py
It checks, for one SAE of each architecture and for bagging and boosting ensembles:
- every `sae.cfg` field that SAEBench's evaluations read exists, with the type SAEBench's `CustomSAEConfig` gives it,
  and `cfg.to_dict()` is JSON;
- SAEBench's `BaseSAE.check_decoder_norms` accepts the decoder (unit rows), `BaseSAE`'s shape assertions hold, and
  encode / decode / forward on `[batch, seq, d_in]` activations agree as `BaseSAE.test_sae` requires;
- SAEBench core's `get_featurewise_weight_based_metrics` runs and returns one value per feature;
- `.to(dtype=...)` updates `dtype` and `cfg.dtype`, as SAEBench's `BaseSAE.to` does.
Prints one JSON line per model and exits non-zero if any check fails.
"""
import dataclasses, json, sys

import torch
import sae_bench
from sae_bench.custom_saes.base_sae import BaseSAE
from sae_bench.custom_saes.custom_sae_config import CustomSAEConfig
from sae_bench.evals.core.main import get_featurewise_weight_based_metrics

import saens

# the cfg fields SAEBench's evaluations read (grep `sae.cfg.` in sae_bench/evals), and the types CustomSAEConfig gives them
READ = dict(model_name=str, d_in=int, d_sae=int, hook_layer=int, hook_name=str, context_size=int,
            hook_head_index=(int, type(None)), prepend_bos=bool, dtype=str, architecture=str)
hints = {f.name: f.type for f in dataclasses.fields(CustomSAEConfig)}
assert set(READ) - {"architecture_str"} <= set(hints), set(READ) - set(hints)

torch.manual_seed(0)
d, m = 32, 64
models = {a: saens.make_sae(a, d, m, **({"k": 4} if "topk" in a else {})) for a in ("relu", "topk", "jumprelu", "batchtopk")}
models["batchtopk"].threshold.fill_(0.3)
models["bagging"] = saens.Ensemble([saens.make_sae("relu", d, m, seed=s) for s in range(3)])
models["boosting"] = saens.Ensemble([saens.make_sae("topk", d, m, k=4, seed=s) for s in range(3)], mode="boosting")
failed = []
for name, sae in models.items():
    sae.describe(model_name="pythia-70m-deduped", hook_name="blocks.3.hook_resid_post", context_size=128)
    out = dict(model=name, sae_bench=getattr(sae_bench, "__version__", "0.6"))
    try:
        for field, typ in READ.items():
            v = getattr(sae.cfg, field)
            assert isinstance(v, typ), f"cfg.{field} = {v!r} is not {typ}"
        assert sae.cfg.architecture_str == sae.cfg.architecture
        json.dumps(sae.cfg.to_dict())
        assert BaseSAE.check_decoder_norms(sae), "decoder rows are not unit norm"
        assert sae.W_dec.shape == (sae.cfg.d_sae, sae.cfg.d_in) and sae.W_enc.shape == (sae.cfg.d_in, sae.cfg.d_sae)
        acts = torch.randn(2, 10, d)
        with torch.no_grad():
            enc = sae.encode(acts); dec = sae.decode(enc)
            rec = sae(acts.reshape(-1, d)).reshape(acts.shape)
        assert torch.allclose(rec, dec, atol=1e-5), "forward on flattened activations differs from decode(encode(.))"
        fm = get_featurewise_weight_based_metrics(sae)
        assert all(len(v) == sae.cfg.d_sae for v in fm.values()), {k: len(v) for k, v in fm.items()}
        sae.to(dtype=torch.float64)
        assert sae.dtype == torch.float64 and sae.cfg.dtype == "float64", (sae.dtype, sae.cfg.dtype)
        out["ok"] = True
    except Exception as e:
        out.update(ok=False, error=f"{type(e).__name__}: {e}"); failed.append(name)
    print(json.dumps(out), flush=True)
sys.exit(1 if failed else 0)
