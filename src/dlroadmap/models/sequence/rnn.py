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

RecurrentCell.step is the lesson: one time step, as the equations say. The LSTM layer runs the same
recurrence through LSTMThroughTime, which also writes its backward pass (backpropagation through
time) out by hand: twice as fast as letting autograd replay the loop, within 1.5x of nn.LSTM
(benchmarks/lstm_speed.py), and checked against both autograd (gradcheck) and nn.LSTM.
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


class LSTMThroughTime(torch.autograd.Function):
    """One LSTM layer over a whole sequence, with backpropagation through time written out.

    Autograd could differentiate the step-by-step loop of RecurrentCell.step by itself, but it would
    record and replay a dozen small ops per time step. Written out, only the recurrence is sequential:
    the input projection W_ih x_t of every step is one matmul before the loop, the forward loop keeps
    the gate activations and cell states, and the backward pass computes every factor that does not
    depend on the recurrence for all steps at once, then walks the steps in reverse doing only the
    chain dh_t, dc_t -> dh_{t-1}, dc_{t-1}; the weight gradients are one matmul each over all steps.
    Same numbers as autograd (gradcheck in the tests), within 1.5x of nn.LSTM's oneDNN kernel.

    Tensors are time-major so that each step's slice is one contiguous block.
    Inputs: x (T, N, I), h0, c0 (N, H), weight_ih (4H, I), weight_hh (4H, H), bias = b_ih + b_hh (4H).
    Outputs: h_t for every step (T, N, H) and the last cell state c_T (N, H).
    """

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias):
        T, N, _ = x.shape
        H = weight_hh.shape[1]
        # tanh(z) = 2 sigmoid(2z) - 1: with the g rows doubled, one sigmoid call covers all four gates.
        two_g = torch.ones(4 * H, 1, dtype=x.dtype, device=x.device)
        two_g[2 * H:3 * H] = 2
        w_ih, w_hh, b = weight_ih * two_g, weight_hh * two_g, bias * two_g[:, 0]
        acts = torch.addmm(b, x.reshape(T * N, -1), w_ih.T).view(T, N, 4 * H)   # W_ih x_t + b for all steps at once
        hs = x.new_empty(T + 1, N, H)                        # h_0 .. h_T
        cs = x.new_empty(T + 1, N, H)                        # c_0 .. c_T
        tcs = x.new_empty(T, N, H)                           # tanh(c_t), kept for the backward pass
        hs[0], cs[0] = h0, c0
        w_hh_t = w_hh.T
        # unbind once: per-step views without indexing in the loop (Python overhead matters at this size)
        a_, h_, c_, tc_ = acts.unbind(0), hs.unbind(0), cs.unbind(0), tcs.unbind(0)
        for t in range(T):
            a = a_[t].addmm_(h_[t], w_hh_t)                  # (N, 4H) pre-activation gates: W_ih x_t + b + W_hh h_{t-1}
            a.sigmoid_()                                     # i, f, o and s = sigmoid(2 z_g), g = tanh(z_g) = 2 s - 1
            i, f, s, o = a.split(H, dim=1)
            # c_t = f c_{t-1} + i g = f c_{t-1} + 2 i s - i: the constant error carousel
            torch.mul(f, c_[t], out=c_[t + 1]).addcmul_(i, s, value=2).sub_(i)
            torch.tanh(c_[t + 1], out=tc_[t])
            torch.mul(o, tc_[t], out=h_[t + 1])              # h_t = o tanh(c_t)
        ctx.save_for_backward(x, weight_ih, weight_hh, hs, cs, tcs, acts)
        return hs[1:], cs[T].clone()

    @staticmethod
    def backward(ctx, d_out, d_cT):
        x, weight_ih, weight_hh, hs, cs, tcs, acts = ctx.saved_tensors
        T, N, H = tcs.shape
        i, f, s, o = acts.split(H, dim=2)                    # each (T, N, H); g = 2 s - 1
        # First everything that does not depend on the recurrence, for all steps at once.
        # c_t = f c_{t-1} + i g and h_t = o tanh(c_t): what each gate's activation is multiplied by
        # (dc/di = g, dc/df = c_{t-1}, dc/dg = i, dh/do = tanh c_t) ...
        d_gates = torch.cat([2 * s - 1, cs[:-1], 4 * i, tcs], dim=2)     # (T, N, 4H)
        # ... times the activation's derivative: sigmoid' = a (1 - a) for i, f, o, and for g, as g = 2 s - 1
        # with s = sigmoid(2 z_g), tanh'(z_g) = 4 s (1 - s): the 4 went in above, so one expression covers all four.
        d_gates.mul_(acts).addcmul_(d_gates, acts, value=-1)
        dc_from_h = torch.addcmul(o, hs[1:], tcs, value=-1)  # dh_t -> dc_t: o (1 - tanh^2 c_t) = o - h_t tanh c_t
        # Then the recurrence, in reverse: only dh and dc travel from step to step.
        d_out_, dch_, f_, dg_ = d_out.unbind(0), dc_from_h.unbind(0), f.unbind(0), d_gates.unbind(0)
        dh, dc = d_out_[T - 1], d_cT                         # h_T feeds only the output, c_T only what returned it
        for t in reversed(range(T)):
            dc = torch.addcmul(dc, dh, dch_[t])              # c_t feeds h_t and c_{t+1}
            dg_[t].view(N, 4, H).mul_(torch.stack([dc, dc, dc, dh], dim=1))   # (N, 4H): dL/d(pre-activation gates)
            dc = dc * f_[t]                                  # dc_{t-1}: the carousel passes f along
            # dh_{t-1}: h_{t-1} feeds the output at t-1 and, through W_hh, step t (one fused call: d_out + dg W_hh)
            dh = torch.addmm(d_out_[t - 1], dg_[t], weight_hh) if t else dg_[t] @ weight_hh
        # Every step used the same weights: their gradients are sums over steps, one matmul each
        # (computed as (input^T dL/dgates)^T: the same sum, and the faster operand order for oneDNN here).
        flat = d_gates.view(T * N, 4 * H)
        d_x = (flat @ weight_ih).view_as(x) if ctx.needs_input_grad[0] else None
        d_w_ih = (x.reshape(T * N, -1).T @ flat).T
        d_w_hh = (hs[:-1].reshape(T * N, H).T @ flat).T
        return d_x, dh, dc, d_w_ih, d_w_hh, flat.sum(0)


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
            if self.kind == "lstm":
                # the recurrence of cell.step, with its backward written out (see LSTMThroughTime), time-major;
                # under bf16 autocast the recurrence itself stays in the weights' precision
                with torch.autocast(x.device.type, enabled=False):
                    x_tm = layer_in.transpose(0, 1).to(cell.weight_ih.dtype)                  # (T, N, I)
                    out_tm, c = LSTMThroughTime.apply(x_tm, h.to(x_tm.dtype), c.to(x_tm.dtype), cell.weight_ih, cell.weight_hh,
                                                      cell.bias_ih + cell.bias_hh)
                layer_in = out_tm.transpose(0, 1)                  # (N, T, H)
                h_n.append(out_tm[-1])
                c_n.append(c)
                continue
            xi = layer_in @ cell.weight_ih.T + cell.bias_ih   # (N, T, gates * H): all steps at once
            outs = []
            for step in range(t):
                h = cell.step(xi[:, step], h)
                outs.append(h)
            layer_in = torch.stack(outs, dim=1)
            h_n.append(h)
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
