"""`convert_tl_gelu_1l` against TransformerLens itself, on random weights with GELU-1L's widths.

Skipped unless TransformerLens with `HookedTransformer` is installed (it was removed in
TransformerLens 4.0; 3.x still has it). The notebook `06_models` checks the same conversion
against an independent einsum reference, which needs no TransformerLens.
"""
import warnings

import pytest
import torch

tl = pytest.importorskip("transformer_lens")
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from transformer_lens import HookedTransformer, HookedTransformerConfig
except ImportError:
    pytest.skip("this TransformerLens has no HookedTransformer (removed in 4.0)", allow_module_level=True)

from saens.models import LanguageModel, convert_tl_gelu_1l

HOOK = "blocks.0.hook_resid_post"


def random_gelu_1l(vocab=1000, n_ctx=64, seed=0):
    "GELU-1L's widths (d 512, 8 heads of 64, d_mlp 2048), a smaller vocabulary and context; every parameter random."
    cfg = HookedTransformerConfig(d_model=512, n_layers=1, n_heads=8, d_head=64, d_mlp=2048, n_ctx=n_ctx, d_vocab=vocab,
                                  act_fn="gelu", normalization_type="LN", positional_embedding_type="standard",
                                  seed=seed, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # TransformerLens starts biases at 0 and LayerNorms at (1, 0): move them so they matter
        for name, p in model.named_parameters():
            if ".b_" in name or "ln" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = random_gelu_1l()
    tokens = torch.randint(0, 1000, (2, 32), generator=torch.Generator().manual_seed(1))
    return model, tokens


def test_unprocessed_weights_match_run_with_cache(setup):
    model, tokens = setup
    logits, cache = model.run_with_cache(tokens)
    hf = LanguageModel(convert_tl_gelu_1l(model.state_dict(), model.cfg.to_dict()), name="gelu-1l (random)")
    torch.testing.assert_close(hf.resid_post(tokens, hf.hook_layer(HOOK)), cache[HOOK], atol=5e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(hf.model(tokens).logits, logits, atol=5e-5, rtol=1e-5)


def test_processed_weights(setup):
    "from_pretrained's default processing (fold LN, centre writing weights and unembedding) also converts (LNPre)."
    model, tokens = setup
    raw = LanguageModel(convert_tl_gelu_1l(model.state_dict(), model.cfg.to_dict()))
    processed = random_gelu_1l()
    processed.load_state_dict(model.state_dict())
    processed.process_weights_(fold_ln=True, center_writing_weights=True, center_unembed=True)
    assert processed.cfg.normalization_type == "LNPre"
    logits, cache = processed.run_with_cache(tokens)
    hf = LanguageModel(convert_tl_gelu_1l(processed.state_dict(), processed.cfg.to_dict()))
    torch.testing.assert_close(hf.resid_post(tokens, 0), cache[HOOK], atol=5e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(hf.model(tokens).logits, logits, atol=5e-5, rtol=1e-5)
        # centring the writing weights = subtracting each residual vector's mean; the predictions are unchanged
        x = raw.resid_post(tokens, 0)
        torch.testing.assert_close(cache[HOOK], x - x.mean(-1, keepdim=True), atol=5e-5, rtol=1e-5)
        torch.testing.assert_close(logits.log_softmax(-1), raw.model(tokens).logits.log_softmax(-1), atol=5e-5, rtol=1e-5)
