"""Returns and advantages from a rollout: what a policy-gradient step multiplies log-probabilities by.

Shapes: a rollout of T steps from N parallel envs is (T, N). `dones[t]` says the episode ended with
step t (terminated, or truncated with the lost future already folded into the reward), so nothing
after it belongs to the same episode.
"""

from __future__ import annotations

import torch


def discounted_returns(rewards: torch.Tensor, dones: torch.Tensor, gamma: float, last_value: torch.Tensor | None = None) -> torch.Tensor:
    """G_t = r_t + gamma * (1 - done_t) * G_{t+1}   (REINFORCE's return-to-go, Williams 1992);
    a rollout cut mid-episode bootstraps from last_value (N,)."""
    T = rewards.shape[0]
    out = torch.zeros_like(rewards)
    future = last_value if last_value is not None else torch.zeros_like(rewards[0])
    for t in range(T - 1, -1, -1):
        future = rewards[t] + gamma * (1.0 - dones[t]) * future
        out[t] = future
    return out


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2015, arXiv:1506.02438, eq. 16):
        delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t)
        A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}
    lambda = 0 is the one-step TD advantage, lambda = 1 the Monte-Carlo return minus V. Returns
    (advantages, value targets A + V), both (T, N)."""
    # GAE(gamma, lambda), eq. (16), @schulman2015gae
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(T - 1, -1, -1):
        next_value = last_value if t == T - 1 else values[t + 1]
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * alive - values[t]
        running = delta + gamma * lam * alive * running
        adv[t] = running
    return adv, adv + values


def gae_stable_baselines3(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
                          gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference `gae` is checked against (by tests/test_rl.py and the policy-gradient node), never called
    by it: the same rollout fed into stable-baselines3's RolloutBuffer.compute_returns_and_advantage.
    SB3 marks "observation t begins an episode" where we mark "step t ended one": episode_starts[t] =
    dones[t - 1]. Returns (advantages, value targets) as float32 (SB3 stores float32)."""
    import gymnasium as gym
    from stable_baselines3.common.buffers import RolloutBuffer

    T, N = rewards.shape
    buf = RolloutBuffer(T, gym.spaces.Box(-1, 1, (1,)), gym.spaces.Discrete(2), device="cpu", gae_lambda=lam, gamma=gamma, n_envs=N)
    for t in range(T):
        starts = torch.zeros(N) if t == 0 else dones[t - 1]
        buf.add(torch.zeros(N, 1).numpy(), torch.zeros(N, 1).numpy(), rewards[t].numpy(), starts.numpy(), values[t].clone(), torch.zeros(N))
    buf.compute_returns_and_advantage(last_values=last_value.clone(), dones=dones[-1].numpy())
    return torch.from_numpy(buf.advantages), torch.from_numpy(buf.returns)
