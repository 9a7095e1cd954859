"""RNN, LSTM and GRU written out = torch.nn.RNN / LSTM / GRU with copied weights (outputs, final states, gradients)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlroadmap.models.sequence.rnn import LSTMThroughTime, Recurrent, SequenceClassifier

TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_matches_torch(kind, layers):
    torch.manual_seed(0)
    ref = TORCH[kind](5, 7, layers, batch_first=True).double()
    ours = Recurrent(kind, 5, 7, layers).double().load_from_torch(ref)
    x = torch.randn(3, 11, 5, dtype=torch.float64, requires_grad=True)
    if kind == "lstm":
        state = (torch.randn(layers, 3, 7, dtype=torch.float64), torch.randn(layers, 3, 7, dtype=torch.float64))
    else:
        state = torch.randn(layers, 3, 7, dtype=torch.float64)
    out_o, fin_o = ours(x, state)
    out_r, fin_r = ref(x, state)
    torch.testing.assert_close(out_o, out_r, rtol=1e-12, atol=1e-12)
    for a, b in zip(fin_o if kind == "lstm" else [fin_o], fin_r if kind == "lstm" else [fin_r]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    up = torch.randn_like(out_r)
    loss_o = (out_o * up).sum() + (fin_o[1].sum() if kind == "lstm" else 0)
    loss_r = (out_r * up).sum() + (fin_r[1].sum() if kind == "lstm" else 0)
    g_o = torch.autograd.grad(loss_o, [x, *ours.parameters()])
    g_r = torch.autograd.grad(loss_r, [x, *[getattr(ref, f"{n}_l{l}") for l in range(layers) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]])
    for a, b in zip(g_o, g_r):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_zero_initial_state_and_classifier_shapes():
    torch.manual_seed(1)
    ref = nn.GRU(4, 6, batch_first=True)
    ours = Recurrent("gru", 4, 6).load_from_torch(ref)
    x = torch.randn(2, 9, 4)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=1e-5, atol=1e-6)
    for kind in ("rnn", "lstm", "gru"):
        assert SequenceClassifier(kind, 28, 16, 10)(torch.randn(5, 28, 28)).shape == (5, 10)
    with pytest.raises(ValueError):
        Recurrent("transformer", 1, 1)


def test_lstm_backward_written_out_passes_gradcheck():
    """LSTMThroughTime's hand-written BPTT against finite differences, through every input and both outputs."""
    torch.manual_seed(2)
    T, N, I, H = 5, 3, 2, 4
    shapes = [(T, N, I), (N, H), (N, H), (4 * H, I), (4 * H, H), (4 * H,)]     # x, h0, c0, W_ih, W_hh, b
    args = [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in shapes]
    assert torch.autograd.gradcheck(LSTMThroughTime.apply, args)


def test_lstm_layer_is_the_cell_stepped_through_time():
    """The readable cell (RecurrentCell.step) looped over time gives the layer's outputs and states."""
    torch.manual_seed(3)
    layer = Recurrent("lstm", 5, 6).double()
    x = torch.randn(2, 7, 5, dtype=torch.float64)
    cell = layer.cells[0]
    h = c = torch.zeros(2, 6, dtype=torch.float64)
    outs = []
    for t in range(7):
        h, c = cell(x[:, t], (h, c))
        outs.append(h)
    out, (h_n, c_n) = layer(x)
    torch.testing.assert_close(out, torch.stack(outs, 1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c_n[0], c, rtol=1e-12, atol=1e-12)


def test_lstm_under_bf16_autocast_keeps_the_recurrence_in_fp32():
    torch.manual_seed(4)
    layer = Recurrent("lstm", 5, 6)
    x = torch.randn(2, 7, 5)
    with torch.autocast("cpu", torch.bfloat16):
        out, (h_n, c_n) = layer(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, layer(x)[0], rtol=0, atol=0)
