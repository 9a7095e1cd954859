"""CLIP: the symmetric InfoNCE against pytorch-metric-learning's NT-Xent, the encoders' shapes and masking,
the captions' tokenizer, and zero-shot weights."""

import pytest
import torch
import torch.nn.functional as F

from dlroadmap.data.captions import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, WordTokenizer, caption, caption_table
from dlroadmap.models.multimodal.clip import CLIP, TextEncoder, ViTEncoder, class_embeddings, clip_loss


def test_clip_loss_is_nt_xent_from_images_to_texts_and_back():
    """pytorch-metric-learning's NTXentLoss with ref_emb ranks only the other modality's embeddings, and with
    temperature 1/scale on cosine similarity it is one direction of CLIP's loss; CLIP averages both."""
    from pytorch_metric_learning.losses import NTXentLoss

    torch.manual_seed(0)
    img, txt, scale = torch.randn(16, 8).double(), torch.randn(16, 8).double(), 14.3
    logits = scale * F.normalize(img, dim=1) @ F.normalize(txt, dim=1).T
    labels = torch.arange(16)
    ref = NTXentLoss(temperature=1 / scale)
    other = labels.clone()      # not the same object: pml then drops the diagonal as "self" pairs (and returns 0)
    expected = (ref(img, labels, ref_emb=txt, ref_labels=other) + ref(txt, labels, ref_emb=img, ref_labels=other)) / 2
    assert expected > 1
    torch.testing.assert_close(clip_loss(logits), expected, atol=1e-10, rtol=1e-10)


def test_clip_loss_is_the_two_cross_entropies_written_out():
    torch.manual_seed(1)
    logits = torch.randn(5, 5).double()
    rows = -(logits.diag() - logits.logsumexp(1)).mean()
    cols = -(logits.diag() - logits.logsumexp(0)).mean()
    torch.testing.assert_close(clip_loss(logits), (rows + cols) / 2)
    assert clip_loss(logits).item() != pytest.approx(rows.item())     # both directions count


def test_text_encoder_reads_the_end_token_and_ignores_padding():
    torch.manual_seed(0)
    enc = TextEncoder(20, 12, width=16, layers=2, heads=2).eval()
    ids = torch.tensor([[1, 5, 6, 2, 0, 0, 0, 0], [1, 5, 6, 7, 8, 9, 2, 0]])
    ends = torch.tensor([3, 6])
    out = enc(ids, ends)
    padded_other = ids.clone()
    padded_other[0, 4:] = 13                       # anything after <end> is never seen by it
    torch.testing.assert_close(enc(padded_other, ends)[0], out[0])
    changed = ids.clone()
    changed[0, 1] = 9                              # a word before it is
    assert not torch.allclose(enc(changed, ends)[0], out[0])


def test_vit_sees_the_whole_image_and_clip_logits_are_scaled_cosines():
    torch.manual_seed(0)
    vit = ViTEncoder(28, patch=7, width=16, layers=1, heads=2)
    x = torch.rand(3, 1, 28, 28)
    assert vit(x).shape == (3, 16)
    x2 = x.clone()
    x2[:, :, -7:, -7:] = 0                          # the last patch reaches the class token through attention
    assert not torch.allclose(vit(x2), vit(x))
    with pytest.raises(ValueError, match="must divide"):
        ViTEncoder(28, patch=6)
    model = CLIP(vit, 16, TextEncoder(20, 12, width=16, layers=1, heads=2), embed_dim=8)
    ids, ends = torch.tensor([[1, 5, 2], [1, 6, 2], [1, 7, 2]]), torch.tensor([2, 2, 2])
    logits = model(x, ids, ends)
    assert model.scale().item() == pytest.approx(1 / 0.07)
    assert logits.abs().max() <= model.scale() + 1e-4
    torch.testing.assert_close(logits, model.scale() * model.encode_image(x) @ model.encode_text(ids, ends).T)


def test_held_out_templates_are_new_combinations_of_known_words():
    tok = WordTokenizer([caption(t, c) for t in TRAIN_TEMPLATES for c in range(10)])
    train = {caption(t, c) for t in TRAIN_TEMPLATES for c in range(10)}
    for t in HELD_OUT_TEMPLATES:
        for c in range(10):
            assert caption(t, c) not in train
    ids, ends = caption_table(tok, HELD_OUT_TEMPLATES, 10)       # every word known: no error
    assert ids.shape == (len(HELD_OUT_TEMPLATES), 10, 10) and (ids[torch.arange(5)[:, None], torch.arange(10), ends] == tok.EOS).all()
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode(["a photo of a cat"])


def test_prompt_ensemble_is_the_normalised_mean_of_template_embeddings():
    torch.manual_seed(0)
    model = CLIP(ViTEncoder(28, 7, 16, 1, 2), 16, TextEncoder(40, 10, 16, 1, 2), 8).eval()
    tok = WordTokenizer([caption(t, c) for t in TRAIN_TEMPLATES for c in range(10)])
    ids, ends = caption_table(tok, HELD_OUT_TEMPLATES[:2], 10)
    w = class_embeddings(model, ids, ends)
    one = [model.encode_text(ids[i], ends[i]) for i in range(2)]
    torch.testing.assert_close(w, F.normalize(one[0] + one[1], dim=1))
    torch.testing.assert_close(class_embeddings(model, ids[:1], ends[:1]), one[0])


def test_interleaved_captions_write_each_digit_in_both_styles():
    from dlroadmap.data.captions import InterleavedCaptions

    lang = InterleavedCaptions()
    tokens = lang.label_token(torch.tensor([0, 7, 0, 7]), torch.tensor([0, 0, 1, 1]))
    assert [lang.vocab[t] for t in tokens] == ["zero", "seven", "0", "7"]
    assert lang.style_of(tokens).tolist() == [0, 0, 1, 1] and lang.style_of(torch.tensor([lang.image])).item() == -1
    ids = lang.captions(torch.tensor([[3, 5]]), torch.tensor([1]), query=True)
    assert " ".join(lang.vocab[i] for i in ids[0]) == "<image> this is a 3 . <image> this is a"
