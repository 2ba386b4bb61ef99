"""The Transformer blocks of SASRec and BERT4Rec: the same function as torch's pre-norm encoder layer, and their dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zenrec.models.nets.transformer import TransformerNet

D, HEADS, N, FFN = 8, 2, 6, 12


def _allowed(seq: torch.Tensor, causal: bool) -> torch.Tensor:
    pad = seq == 0
    allowed = ~pad[:, None, :]
    if causal:
        allowed = torch.tril(torch.ones(N, N, dtype=torch.bool))[None] & allowed
    return allowed | torch.eye(N, dtype=torch.bool)[None]


@pytest.mark.parametrize("causal", [True, False])
def test_blocks_compute_torch_pre_norm_encoder_layers(causal):
    """With the same weights, in eval mode, the blocks equal ``nn.TransformerEncoder`` of pre-norm GELU layers
    under the same additive attention mask (padded keys hidden, causal or not)."""
    torch.manual_seed(0)
    net = TransformerNet(20, D, HEADS, 2, N, 0.3, FFN, causal).eval()
    layer = nn.TransformerEncoderLayer(D, HEADS, FFN, 0.3, activation="gelu", batch_first=True, norm_first=True)
    ref = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    with torch.no_grad():
        for block, theirs in zip(net.blocks, ref.layers, strict=True):
            theirs.self_attn.in_proj_weight.copy_(block.self_attn.in_proj.weight)
            theirs.self_attn.in_proj_bias.copy_(block.self_attn.in_proj.bias)
            theirs.self_attn.out_proj.load_state_dict(block.self_attn.out_proj.state_dict())
            for name in ("linear1", "linear2", "norm1", "norm2"):
                getattr(theirs, name).load_state_dict(getattr(block, name).state_dict())
        seq = torch.tensor([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]])
        allowed = _allowed(seq, causal)
        x = torch.randn(2, N, D)
        mask = torch.zeros(2, N, N).masked_fill(~allowed, float("-inf")).repeat_interleave(HEADS, 0)
        ours = x
        for block in net.blocks:
            ours = block(ours, allowed)
        assert torch.allclose(ours, ref(x, mask=mask), atol=1e-5)
        # and a change to a later item leaves earlier positions alone only when causal
        seq2 = seq.clone()
        seq2[1, -1] = 7
        a, b = net(seq), net(seq2)
        assert torch.allclose(a[1, :-1], b[1, :-1], atol=1e-6) == causal


def test_dropout_zeroes_about_p_scales_the_rest_and_is_off_in_eval():
    net = TransformerNet(20, D, 1, 1, N, 0.25, FFN, True)
    drop = net.drop
    torch.manual_seed(1)
    x = torch.ones(200_000, requires_grad=True)
    y = drop(x)
    zeroed = float((y == 0).float().mean())
    assert zeroed == pytest.approx(0.25, abs=0.005)
    kept = y.detach()[y.detach() != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.75))
    y.sum().backward()  # the gradient flows through kept entries only, with the same scale
    assert torch.equal(x.grad, y.detach())
    net.eval()
    assert torch.equal(net.drop(x), x)
