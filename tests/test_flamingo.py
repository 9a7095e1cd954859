"""Flamingo-style model: the frozen LM's logits at initialisation, which parameters learn, the per-image mask."""

import torch
from torch import nn

from dlroadmap.models.multimodal.flamingo import (Flamingo, GatedCrossAttentionDense, PerceiverResampler, caption_loss,
                                                   image_attention_mask, media_index)
from dlroadmap.models.sequence.gpt import GPT, GPTConfig

IMAGE = 1


class TinyVision(nn.Module):
    """(N, 1, 28, 28) -> (N, 16, 8): a 4x4 grid of features, like the CLIP CNN's last feature map."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 7, stride=7)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return self.bn(self.conv(x)).flatten(2).transpose(1, 2)


def _model(seed=0):
    torch.manual_seed(seed)
    lm = GPT(GPTConfig(vocab_size=12, block_size=16, n_layer=2, n_head=2, n_embd=16))
    return lm, Flamingo(lm, TinyVision(), 8, IMAGE, num_latents=3, depth=1, heads=2)


def _batch():
    ids = torch.tensor([[3, 1, 4, 5, 6, 1, 4, 7, 6, 2], [1, 4, 8, 6, 1, 4, 9, 6, 1, 4]])
    return ids, torch.rand(2, 3, 1, 28, 28)


def test_at_initialisation_the_logits_are_the_frozen_lms_exactly():
    lm, model = _model()
    ids, images = _batch()
    model.train()
    assert torch.equal(model(ids, images), lm(ids)[0])          # tanh(0) gates: every new layer adds exactly 0


def test_only_the_resampler_and_the_new_layers_learn():
    lm, model = _model()
    ids, images = _batch()
    frozen = set(map(id, list(lm.parameters()) + list(model.vision.parameters())))
    new = model.trainable_parameters()
    assert new and not frozen & set(map(id, new))
    opt = torch.optim.SGD(new, lr=0.5)
    for _ in range(2):      # after one step the gates are open, so the cross-attention weights get gradients too
        opt.zero_grad()
        caption_loss(model(ids, images)[:, :-1], ids[:, 1:]).backward()
        opt.step()
    assert all(p.grad is None for p in lm.parameters()) and all(p.grad is None for p in model.vision.parameters())
    named = dict(model.named_parameters())
    for name, p in named.items():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.xattn["0"].attn_gate.item() != 0 and model.vision.bn.training is False
    before = {n: p.clone() for n, p in lm.named_parameters()}
    assert all(torch.equal(before[n], p) for n, p in lm.named_parameters())


def test_each_token_sees_only_the_image_just_before_it():
    ids, _ = _batch()
    media = media_index(ids, IMAGE)
    assert media.tolist() == [[0, 1, 1, 1, 1, 2, 2, 2, 2, 2], [1, 1, 1, 1, 2, 2, 2, 2, 3, 3]]
    allowed = image_attention_mask(media, num_images=3, latents=2)      # (2, 10, 6)
    expected = torch.zeros(2, 10, 6, dtype=torch.bool)
    for b in range(2):
        for t in range(10):
            m = media[b, t].item()
            if m:
                expected[b, t, 2 * (m - 1): 2 * m] = True
    assert torch.equal(allowed, expected)
    assert not allowed[0, 0].any()                                      # before any image: nothing


def test_a_gated_layer_passes_each_images_content_only_to_its_own_tokens():
    torch.manual_seed(0)
    layer = GatedCrossAttentionDense(16, heads=2)
    nn.init.constant_(layer.attn_gate, 1.0)
    y, visual = torch.randn(2, 10, 16), torch.randn(2, 6, 16)
    allowed = image_attention_mask(media_index(_batch()[0], IMAGE), 3, 2)
    layer.ff_gate.data.zero_()                                          # attention alone, so positions do not mix
    base = layer(y, visual, allowed)
    changed = visual.clone()
    changed[:, 2:4] += 1.0                                              # image 2's latents
    out = layer(y, changed, allowed)
    moved = (out - base).abs().sum(-1) > 1e-6                           # (2, 10)
    assert torch.equal(moved, media_index(_batch()[0], IMAGE) == 2)
    assert torch.isfinite(base).all()


def test_resampler_gives_the_same_number_of_tokens_for_any_number_of_inputs():
    torch.manual_seed(0)
    r = PerceiverResampler(8, 16, depth=2, num_latents=5, heads=2)
    assert r(torch.randn(3, 16, 8)).shape == (3, 5, 16) == r(torch.randn(3, 49, 8)).shape


def test_features_computed_once_give_the_same_logits_as_images():
    _, model = _model()
    ids, images = _batch()
    model.eval()
    torch.testing.assert_close(model(ids, features=model.visual_features(images)), model(ids, images), rtol=0, atol=0)
