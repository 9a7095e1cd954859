"""Recurrent networks written out: the vanilla RNN (Elman 1990), LSTM (Hochreiter & Schmidhuber
1997, with the forget gate of Gers et al. 2000) and GRU (Cho et al. 2014, arXiv:1406.1078).

Each cell maps (input x_t, state) -> new state; a layer loops the cell over time. Parameters use
torch's layout (weight_ih: (gates * H, I), weight_hh: (gates * H, H), two biases; LSTM gate
order i, f, g, o; GRU r, z, n), so `load_from_torch` copies nn.RNN / nn.LSTM / nn.GRU weights
and tests compare outputs, final states and gradients with them.

    RNN   h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
    LSTM  i, f, o = sigmoid(.), g = tanh(.)   c' = f * c + i * g   h' = o * tanh(c')
    GRU   r, z = sigmoid(.)   n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   h' = (1 - z) * n + z * h

The LSTM's cell state is updated additively (c' = f * c + ...), so with f near 1 the gradient
flows back through many steps nearly unchanged; the vanilla RNN multiplies by W_hh and tanh' at
every step, and its gradient vanishes (or explodes) geometrically: Bengio, Simard & Frasconi 1994.
"""

from __future__ import annotations

import math

import torch
from torch import nn

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


class RecurrentCell(nn.Module):
    def __init__(self, kind: str, input_size: int, hidden_size: int):
        super().__init__()
        if kind not in GATES:
            raise ValueError(f"kind must be one of {list(GATES)}")
        self.kind, self.hidden_size = kind, hidden_size
        g = GATES[kind]
        self.weight_ih = nn.Parameter(torch.empty(g * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(g * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(g * hidden_size))
        bound = 1 / math.sqrt(hidden_size)  # torch's initialisation: U(-1/sqrt(H), 1/sqrt(H))
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, state):
        return self.step(x @ self.weight_ih.T + self.bias_ih, state)

    def step(self, xi: torch.Tensor, state):
        """One time step from the input projection xi = W_ih x + b_ih (a layer computes it for all
        steps at once: one big matmul instead of T small ones)."""
        H = self.hidden_size
        # the simple recurrent network: the hidden state fed back as input, @elman1990finding
        # dh'/dh = diag(tanh') W_hh: a product of T of these vanishes or explodes geometrically, @bengio1994learning
        if self.kind == "rnn":
            return torch.tanh(xi + state @ self.weight_hh.T + self.bias_hh)
        if self.kind == "lstm":
            h, c = state
            # the LSTM's additive cell update: the constant error carousel, @hochreiter1997lstm
            gates = torch.addmm(xi + self.bias_hh, h, self.weight_hh.T)   # xi + b_hh + h W_hh^T, one fused call
            s = torch.sigmoid(gates)                                      # i, f, o (the g slot is unused)
            i, f, _, o = s.split(H, dim=1)
            g = torch.tanh(gates[:, 2 * H:3 * H])
            # the forget gate f scales the old cell state, @gers2000forget
            c = f * c + i * g
            return o * torch.tanh(c), c
        # the GRU: reset and update gates, eqs. (5)-(8), @cho2014gru
        gh = state @ self.weight_hh.T + self.bias_hh
        ir, iz, inn = xi.split(H, dim=1)
        hr, hz, hn = gh.split(H, dim=1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(inn + r * hn)          # the reset gate scales the *recurrent* part only
        return (1 - z) * n + z * state


class Recurrent(nn.Module):
    """A (multi-layer) recurrent network over a batch-first sequence (N, T, I).

    Returns (outputs of the last layer at every step (N, T, H), final state per layer) like torch:
    h_n (L, N, H) for RNN/GRU, (h_n, c_n) for LSTM.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_layers: int = 1):
        super().__init__()
        self.kind, self.hidden_size, self.num_layers = kind, hidden_size, num_layers
        self.cells = nn.ModuleList(RecurrentCell(kind, input_size if l == 0 else hidden_size, hidden_size) for l in range(num_layers))

    def forward(self, x: torch.Tensor, state=None):
        n, t, _ = x.shape
        zeros = x.new_zeros(n, self.hidden_size)
        h_n, c_n = [], []
        layer_in = x
        for l, cell in enumerate(self.cells):
            if self.kind == "lstm":
                h, c = (zeros, zeros) if state is None else (state[0][l], state[1][l])
            else:
                h = zeros if state is None else state[l]
            xi = layer_in @ cell.weight_ih.T + cell.bias_ih   # (N, T, gates * H): all steps at once
            outs = []
            for step in range(t):
                if self.kind == "lstm":
                    h, c = cell.step(xi[:, step], (h, c))
                else:
                    h = cell.step(xi[:, step], h)
                outs.append(h)
            layer_in = torch.stack(outs, dim=1)
            h_n.append(h)
            if self.kind == "lstm":
                c_n.append(c)
        final = (torch.stack(h_n), torch.stack(c_n)) if self.kind == "lstm" else torch.stack(h_n)
        return layer_in, final

    def load_from_torch(self, module: nn.RNNBase) -> "Recurrent":
        """Copy the weights of a batch_first nn.RNN / nn.LSTM / nn.GRU with the same sizes."""
        with torch.no_grad():
            for l, cell in enumerate(self.cells):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(module, f"{name}_l{l}"))
        return self


class SequenceClassifier(nn.Module):
    """Read a sequence, classify from the last hidden state (e.g. an image read row by row)."""

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_classes: int, num_layers: int = 1, use_torch: bool = False):
        super().__init__()
        self.kind = kind
        if use_torch:
            self.rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind](input_size, hidden_size, num_layers, batch_first=True)
        else:
            self.rnn = Recurrent(kind, input_size, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])
