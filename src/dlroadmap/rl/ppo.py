"""Actor-critic with GAE, and PPO (Schulman et al. 2017, arXiv:1707.06347), on vectorised envs.

One loop does both. Each iteration collects `n_steps` steps from `n_envs` envs (a (T, N) rollout),
computes GAE advantages (rl/advantages.py), then optimises

  PPO-clip  L = E[ min( rho A, clip(rho, 1 - eps, 1 + eps) A ) ],   rho = pi(a|s) / pi_old(a|s)   (eq. 7)

for `epochs` passes over shuffled minibatches, plus a value loss and an entropy bonus. With one
epoch, one minibatch and no clipping (rho = 1 at the only pass, so d rho = d log pi) the same loop
is the advantage actor-critic (A2C) with GAE.

A time-limit truncation is not a failure: the reward of a truncated step gets gamma * V(final obs),
so the advantage bootstraps past the cut (as stable-baselines3 does; CleanRL's ppo.py does not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dlroadmap.rl.advantages import gae
from dlroadmap.rl.monitor import EpisodeMonitor
from dlroadmap.rl.nets import ActorCritic


@dataclass(frozen=True)
class PPOSettings:
    """Defaults: rl-baselines3-zoo's tuned CartPole-v1 PPO (8 envs x 32 steps, 20 epochs, gamma 0.98,
    lambda 0.8, lr 1e-3 and clip 0.2 both annealed linearly to 0, no entropy bonus)."""

    # CleanRL's ppo.py defaults where rl-zoo's CartPole settings say nothing, @huang2022cleanrl
    total_steps: int = 150_000
    n_envs: int = 8
    n_steps: int = 32
    epochs: int = 20
    minibatch: int = 256
    lr: float = 1e-3
    anneal: bool = True           # lr and clip range decay linearly to 0
    gamma: float = 0.98
    lam: float = 0.8
    clip: float | None = 0.2      # None: no clipping (A2C)
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: tuple[int, ...] = (64, 64)


A2C = PPOSettings(n_envs=8, n_steps=5, epochs=1, minibatch=40, lr=7e-4, gamma=0.99, lam=1.0, clip=None, ent_coef=0.0, anneal=False)


def clipped_objective(new_logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, clip: float | None) -> torch.Tensor:
    """The loss to minimise: -E[min(rho A, clip(rho) A)]; without clipping -E[rho A]."""
    # L^CLIP, eq. (7), @schulman2017ppo
    ratio = (new_logp - old_logp).exp()
    if clip is None:
        return -(ratio * adv).mean()
    return -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()


def make_vec(env_id: str, n_envs: int):
    import gymnasium as gym

    from dlroadmap.rl.envs import make_env, require_discrete

    require_discrete(make_env(env_id), "PPO (categorical policy)")          # a clear error before the vector env exists
    return gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})


@dataclass
class Rollout:
    """The last rollout's tensors, (T, N) each (last_value: (N,)): what GAE was computed from."""

    rewards: torch.Tensor
    values: torch.Tensor
    dones: torch.Tensor
    last_value: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


def train_ppo(env_id: str, s: PPOSettings, *, seed: int, monitor: EpisodeMonitor, device: str = "cpu",
              stop_at: float | None = None) -> tuple[ActorCritic, Rollout]:
    """Train for s.total_steps env steps. `stop_at`: stop once the monitor's moving average reaches it; the
    run up to that point is the same as the full one (the schedules depend on total_steps only)."""
    # advantage actor-critic on parallel environments (synchronous A2C), @mnih2016a3c
    torch.manual_seed(seed)
    envs = make_vec(env_id, s.n_envs)
    obs_dim, n_actions = envs.single_observation_space.shape[0], envs.single_action_space.n
    net = ActorCritic(obs_dim, n_actions, s.hidden).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=s.lr, eps=1e-5)
    T, N = s.n_steps, s.n_envs
    iterations = max(s.total_steps // (T * N), 1)
    obs_buf = torch.zeros(T, N, obs_dim, device=device)
    act_buf = torch.zeros(T, N, dtype=torch.long, device=device)
    logp_buf, rew_buf, done_buf, val_buf = (torch.zeros(T, N, device=device) for _ in range(4))

    obs_np, _ = envs.reset(seed=seed)
    ep_ret, ep_len, steps = np.zeros(N), np.zeros(N, dtype=int), 0
    for it in range(iterations):
        frac = 1.0 - it / iterations if s.anneal else 1.0
        for group in opt.param_groups:
            group["lr"] = s.lr * frac
        clip = s.clip * frac if s.clip is not None else None
        # 1. Rollout: (T, N) steps with the current policy, no gradients.
        for t in range(T):
            obs = torch.as_tensor(obs_np, dtype=torch.float32, device=device)
            with torch.no_grad():
                dist = net.dist(obs)
                action = dist.sample()
                obs_buf[t], act_buf[t], logp_buf[t], val_buf[t] = obs, action, dist.log_prob(action), net.value(obs)
            obs_np, reward, terminated, truncated, info = envs.step(action.cpu().numpy())
            reward = reward.astype(np.float64)
            ep_ret += reward                                                   # the env's own reward, before bootstrapping
            for i in np.flatnonzero(truncated & ~terminated):               # bootstrap past a time-limit cut
                final = torch.as_tensor(info["final_obs"][i], dtype=torch.float32, device=device)
                with torch.no_grad():
                    reward[i] += s.gamma * float(net.value(final[None])[0])
            rew_buf[t] = torch.as_tensor(reward, dtype=torch.float32, device=device)
            done = terminated | truncated
            done_buf[t] = torch.as_tensor(done, dtype=torch.float32, device=device)
            steps += N
            ep_len += 1
            for i in np.flatnonzero(done):
                monitor.episode(ep_ret[i], ep_len[i], steps)
                ep_ret[i], ep_len[i] = 0.0, 0
        with torch.no_grad():
            last_value = net.value(torch.as_tensor(obs_np, dtype=torch.float32, device=device))
        adv, returns = gae(rew_buf, val_buf, done_buf, last_value, s.gamma, s.lam)
        if stop_at is not None and len(monitor.returns) >= monitor.window and monitor.moving_average >= stop_at:
            break

        # 2. Optimise the clipped surrogate for `epochs` passes over shuffled minibatches.
        b_obs, b_act, b_logp = obs_buf.reshape(T * N, -1), act_buf.reshape(-1), logp_buf.reshape(-1)
        b_adv, b_ret = adv.reshape(-1), returns.reshape(-1)
        for _ in range(s.epochs):
            perm = torch.randperm(T * N, device=device)
            for start in range(0, T * N, s.minibatch):
                mb = perm[start:start + s.minibatch]
                dist = net.dist(b_obs[mb])
                a = b_adv[mb]
                a = (a - a.mean()) / (a.std() + 1e-8) if len(mb) > 1 else a   # per-minibatch normalisation
                pg_loss = clipped_objective(dist.log_prob(b_act[mb]), b_logp[mb], a, clip)
                v_loss = 0.5 * (net.value(b_obs[mb]) - b_ret[mb]).square().mean()
                loss = pg_loss + s.vf_coef * v_loss - s.ent_coef * dist.entropy().mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), s.max_grad_norm)
                opt.step()
    envs.close()
    # The optimisation only reads the buffers: after the loop they still hold the last rollout.
    return net, Rollout(rew_buf, val_buf, done_buf, last_value, adv, returns)
