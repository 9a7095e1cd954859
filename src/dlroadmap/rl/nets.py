"""The small networks RL agents use on vector observations (CartPole, LunarLander)."""

from __future__ import annotations

import math

import torch
from torch import nn


def mlp(inp: int, out: int, hidden: tuple[int, ...] = (64, 64), *, act: type[nn.Module] = nn.Tanh, out_gain: float = 1.0) -> nn.Sequential:
    """Linear layers with orthogonal init (gain sqrt 2 inside, `out_gain` on the last layer: 0.01 for a
    policy head keeps the first policy near uniform, 1 for a value head), biases zero (as CleanRL)."""
    sizes = (inp, *hidden, out)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b)
        nn.init.orthogonal_(lin.weight, out_gain if i == len(sizes) - 2 else math.sqrt(2))
        nn.init.zeros_(lin.bias)
        layers += [lin] if i == len(sizes) - 2 else [lin, act()]
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Separate policy and value networks (no shared trunk: the value loss cannot disturb the policy's features)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.actor = mlp(obs_dim, n_actions, hidden, out_gain=0.01)   # (B, obs) -> (B, actions) logits
        self.critic = mlp(obs_dim, 1, hidden, out_gain=1.0)           # (B, obs) -> (B, 1) state value

    def dist(self, obs: torch.Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.actor(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)                           # (B,)
