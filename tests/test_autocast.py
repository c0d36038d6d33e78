"Every architecture trains under bfloat16 autocast (the GPU check's bf16 steps), on the CPU here."
import pytest
import torch

from saens.sae import SAE_CLASSES, make_sae

KW = dict(topk=dict(k=4), batchtopk=dict(k=4), relu={}, jumprelu={})


@pytest.mark.parametrize("arch", sorted(KW))
def test_loss_and_gradients_under_bf16_autocast(arch):
    assert set(KW) <= set(SAE_CLASSES)
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    ref, amp = make_sae(arch, 16, 64, seed=1, **KW[arch]), make_sae(arch, 16, 64, seed=1, **KW[arch])
    ref.loss(x).loss.backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = amp.loss(x)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    # bf16 keeps ~3 significant digits: the loss and the decoder's gradient agree with fp32 to a few percent
    assert abs(out.loss.float().item() - ref.loss(x).loss.item()) < 0.05 * abs(ref.loss(x).loss.item())
    for (name, p), q in zip(amp.named_parameters(), ref.parameters()):
        if q.grad is None: continue
        assert p.grad is not None and p.grad.dtype == p.dtype == torch.float32, name   # master weights stay fp32
        assert torch.isfinite(p.grad).all(), name
    cos = torch.nn.functional.cosine_similarity(amp.W_dec.grad.flatten(), ref.W_dec.grad.flatten(), dim=0)
    assert cos > 0.98, f"{arch}: bf16 decoder gradient direction differs from fp32 (cosine {cos:.3f})"
