"""REINFORCE (Williams 1992), without and with a learned baseline.

The policy-gradient theorem turns "make good episodes likelier" into an estimate from sampled episodes:

    grad J = E[ sum_t grad log pi(a_t | s_t) * (G_t - b(s_t)) ]

Any baseline b that does not depend on the action leaves the expectation unchanged (E[grad log pi] = 0)
but can shrink the variance a lot; the learned state value V(s) is the usual choice. `gradient_variance`
measures exactly that: per-episode gradient estimates with b = 0 and b = V on the same episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dlroadmap.rl.advantages import discounted_returns
from dlroadmap.rl.envs import make_env, require_discrete
from dlroadmap.rl.monitor import EpisodeMonitor
from dlroadmap.rl.nets import mlp


@dataclass(frozen=True)
class ReinforceSettings:
    iterations: int = 60
    episodes_per_batch: int = 8
    lr: float = 1e-2
    value_lr: float = 1e-2
    value_steps: int = 20          # regression steps of the baseline on each batch's returns
    gamma: float = 0.99
    hidden: tuple[int, ...] = (32,)


@dataclass
class Episode:
    obs: torch.Tensor        # (L, obs_dim)
    actions: torch.Tensor    # (L,)
    rewards: torch.Tensor    # (L,)


def collect(envs: list, policy: torch.nn.Module, seed: int | None) -> list[Episode]:
    """One full episode from each env, run in lockstep so the policy sees a batch per step."""
    obs = [env.reset(seed=None if seed is None else seed + i)[0] for i, env in enumerate(envs)]
    trajs: list[dict[str, list]] = [{"obs": [], "actions": [], "rewards": []} for _ in envs]
    alive = list(range(len(envs)))
    while alive:
        x = torch.as_tensor(np.stack([obs[i] for i in alive]), dtype=torch.float32)
        with torch.no_grad():
            actions = torch.distributions.Categorical(logits=policy(x)).sample()
        still = []
        for j, i in enumerate(alive):
            trajs[i]["obs"].append(x[j])
            trajs[i]["actions"].append(int(actions[j]))
            obs[i], r, terminated, truncated, _ = envs[i].step(int(actions[j]))
            trajs[i]["rewards"].append(float(r))
            if not (terminated or truncated):
                still.append(i)
        alive = still
    return [Episode(torch.stack(t["obs"]), torch.tensor(t["actions"]), torch.tensor(t["rewards"])) for t in trajs]


def returns_to_go(ep: Episode, gamma: float) -> torch.Tensor:
    done = torch.zeros_like(ep.rewards)
    done[-1] = 1.0
    return discounted_returns(ep.rewards[:, None], done[:, None], gamma)[:, 0]


def surrogate(policy: torch.nn.Module, ep: Episode, weights: torch.Tensor) -> torch.Tensor:
    """sum_t log pi(a_t|s_t) * w_t: its gradient is one episode's policy-gradient estimate."""
    # the REINFORCE estimator: grad log pi(a|s) times the return, @williams1992simple
    logp = torch.distributions.Categorical(logits=policy(ep.obs)).log_prob(ep.actions)
    return (logp * weights).sum()


def train_reinforce(env_id: str, s: ReinforceSettings, *, baseline: bool, seed: int, monitor: EpisodeMonitor,
                    snapshot_at: int | None = None) -> tuple[torch.nn.Module, torch.nn.Module, dict | None]:
    """REINFORCE; with `baseline`, a value net regressed on the returns is subtracted. `snapshot_at`:
    the iteration whose policy and value net are copied out (for measuring gradient variance)."""
    torch.manual_seed(seed)
    probe = make_env(env_id)
    require_discrete(probe, "REINFORCE (categorical policy)")
    envs = [make_env(env_id) for _ in range(s.episodes_per_batch)]
    obs_dim, n_actions = probe.observation_space.shape[0], probe.action_space.n
    policy, value = mlp(obs_dim, n_actions, s.hidden, out_gain=0.01), mlp(obs_dim, 1, s.hidden)
    opt, vopt = torch.optim.Adam(policy.parameters(), lr=s.lr), torch.optim.Adam(value.parameters(), lr=s.value_lr)
    steps, snap = 0, None
    for it in range(s.iterations):
        if it == snapshot_at:
            snap = {"policy": {k: v.clone() for k, v in policy.state_dict().items()}, "value": {k: v.clone() for k, v in value.state_dict().items()}}
        episodes = collect(envs, policy, seed * 1_000_003 + it * len(envs))
        G = [returns_to_go(ep, s.gamma) for ep in episodes]
        for ep in episodes:
            steps += len(ep.rewards)
            monitor.episode(float(ep.rewards.sum()), len(ep.rewards), steps)
        loss = 0.0
        for ep, g in zip(episodes, G):
            with torch.no_grad():
                w = g - value(ep.obs).squeeze(-1) if baseline else g   # V from earlier batches: independent of these actions
            loss = loss - surrogate(policy, ep, w) / len(episodes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if baseline:                                                   # then regress V(s) on the returns just seen
            obs_all, G_all = torch.cat([ep.obs for ep in episodes]), torch.cat(G)
            for _ in range(s.value_steps):
                vopt.zero_grad(set_to_none=True)
                (value(obs_all).squeeze(-1) - G_all).square().mean().backward()
                vopt.step()
    return policy, value, snap


def gradient_variance(policy: torch.nn.Module, value: torch.nn.Module, episodes: list[Episode], gamma: float) -> dict[str, float]:
    """Per-episode gradient estimates with b = 0 and b = V(s) on the same episodes: their total variance
    (trace of the covariance, mean squared distance to the mean) and the agreement of their means."""
    params = list(policy.parameters())
    grads: dict[str, list[torch.Tensor]] = {"none": [], "value": []}
    for ep in episodes:
        g = returns_to_go(ep, gamma)
        with torch.no_grad():
            b = value(ep.obs).squeeze(-1)
        for name, w in (("none", g), ("value", g - b)):
            grad = torch.autograd.grad(surrogate(policy, ep, w), params)
            grads[name].append(torch.cat([x.flatten() for x in grad]))
    out: dict[str, float] = {}
    means = {}
    for name, gs in grads.items():
        G = torch.stack(gs).double()                                          # (episodes, parameters)
        means[name] = G.mean(0)
        out[f"variance_{name}"] = float((G - means[name]).square().sum(1).mean())
    out["variance_ratio"] = out["variance_value"] / out["variance_none"]
    out["mean_cosine"] = float(torch.nn.functional.cosine_similarity(means["none"], means["value"], dim=0))
    return out
