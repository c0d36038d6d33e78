"""The SAELens side of tests/test_saelens.py. Runs inside the SAELens environment (bench/saelens_env.sh) and never
imports saens, so what it checks is what the real `sae-lens` package does with our files.

    python saelens_worker.py JOB.json

JOB.json: {"x": "inputs.safetensors", "load": {name: folder}, "ensembles": {name: folder}, "make": {name: spec},
           "out": "out.safetensors"}
- every folder in "load" is read with `SAE.load_from_disk`; its codes and reconstruction of x are written as
  "<name>.codes" and "<name>.recon";
- every folder in "ensembles" is an ensemble exported as SAELens members plus saens_ensemble.json; the members are
  read by SAELens and combined as the manifest says (boosting: each member encodes the residual of those before it);
- every entry in "make" names an architecture (standard, topk, jumprelu, batchtopk): an SAE of that kind is built in
  SAELens with random weights, saved to the folder with SAELens's own save (BatchTopK with `save_inference_model`,
  as SAELens does after training), and its codes and reconstruction of x are written the same way.
"""
import json, sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
import sae_lens
from sae_lens import SAE, JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig

job = json.loads(Path(sys.argv[1]).read_text())
x = load_file(job["x"])["x"]
d_in = x.shape[-1]
out = {}


def record(name, sae):
    with torch.no_grad():
        c = sae.encode(x)
        out[f"{name}.codes"], out[f"{name}.recon"] = c.contiguous(), sae.decode(c).contiguous()


for name, folder in job.get("load", {}).items():
    record(name, SAE.load_from_disk(folder))

# an ensemble exported as member folders, combined as its saens_ensemble.json says, with SAELens doing every step
for name, folder in job.get("ensembles", {}).items():
    man = json.loads((Path(folder) / "saens_ensemble.json").read_text())
    codes, recon, r = [], 0, x
    with torch.no_grad():
        for a, member in zip(man["weights"], man["members"]):
            sae = SAE.load_from_disk(Path(folder) / member)
            c = sae.encode(r if man["mode"] == "boosting" else x)
            codes.append(a * c); recon = recon + a * sae.decode(c)
            if man["mode"] == "boosting": r = r - a * sae.decode(c)
    out[f"{name}.codes"], out[f"{name}.recon"] = torch.cat(codes, -1).contiguous(), recon.contiguous()

meta = dict(model_name="toy-model", hook_name="blocks.0.hook_resid_post", context_size=128)
for j, (name, spec) in enumerate(job.get("make", {}).items()):
    torch.manual_seed(j)
    arch, folder, d_sae = spec["arch"], spec["folder"], spec.get("d_sae", 48)
    common = dict(d_in=d_in, d_sae=d_sae, dtype="float32", device="cpu", apply_b_dec_to_input=spec.get("apply_b_dec", True))
    if arch == "standard": sae = StandardSAE(StandardSAEConfig(**common))
    elif arch == "topk": sae = TopKSAE(TopKSAEConfig(k=spec.get("k", 5), **common))
    elif arch == "jumprelu": sae = JumpReLUSAE(JumpReLUSAEConfig(**common))
    elif arch == "batchtopk": sae = BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(k=spec.get("k", 5), **common))
    else: raise SystemExit(f"unknown arch {arch}")
    for k, v in meta.items(): setattr(sae.cfg.metadata, k, v)
    with torch.no_grad():   # random, non-trivial weights: non-zero biases, decoder rows of unit norm
        sae.W_enc.normal_(); sae.b_enc.normal_(0, 0.5); sae.b_dec.normal_(0, 0.5)
        sae.W_dec.normal_(); sae.W_dec /= sae.W_dec.norm(dim=-1, keepdim=True)
        if arch == "jumprelu": sae.threshold.uniform_(0.1, 1.0)
        if arch == "batchtopk": sae.topk_threshold.fill_(0.7)
    if arch == "batchtopk":
        sae.save_inference_model(folder)
        record(name, SAE.load_from_disk(folder))   # SAELens's own inference SAE (a jumprelu)
    else:
        sae.save_model(folder)
        record(name, sae)

save_file(out, job["out"])
print(json.dumps(dict(sae_lens=sae_lens.__version__, torch=torch.__version__, n=len(out))))
