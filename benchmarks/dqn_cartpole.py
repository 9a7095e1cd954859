"""DQN on CartPole-v1: ours against two peers, in the same run, at three seeds.

Each contender trains until its 20-episode mean return first reaches 475 (CartPole-v1's reward
threshold) or its own step budget runs out; the wall clock includes its set-up.

  ours      dlroadmap.rl.dqn with its defaults (Double DQN, 64x64, an update every 4 env steps), on the Trainer
  sb3_zoo   stable-baselines3's DQN with rl-baselines3-zoo's tuned CartPole-v1 hyperparameters
            (lr 2.3e-3, batch 64, buffer 100k, learning starts 1k, target every 10 updates, 128 updates
            every 256 steps, epsilon to 0.04 over 16% of 50k steps, 256x256); budget 50k steps as in the zoo
  cleanrl   a loop with CleanRL dqn.py's defaults (lr 2.5e-4, buffer 10k, batch 128, hard target copy
            every 500 steps, epsilon 1 -> 0.05 over the first half of 500k steps, learning starts 10k,
            an update every 10 steps, MSE loss, 120-84 MLP, stable-baselines3's ReplayBuffer); budget 500k

Ours passes a seed when it reaches the target within 110,000 env steps and in less wall time than each
peer took to reach it (a peer that never reached it within its budget counts with the time it ran).

    python benchmarks/dqn_cartpole.py                  # 3 seeds (several minutes: the CleanRL loop is slow)
    python benchmarks/dqn_cartpole.py --seeds 0
"""

from __future__ import annotations

import os
import random

os.environ.setdefault("DLR_PROGRESS", "0")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from dlroadmap.rl.dqn import DQNSettings, train_dqn  # noqa: E402

from common import TargetClock, clocked_monitor, race, save, sb3_clock_callback  # noqa: E402

ENV, TARGET, MAX_STEPS = "CartPole-v1", 475.0, 110_000


def ours(seed: int) -> dict:
    clock = TargetClock(TARGET)
    s = DQNSettings()
    mon = clocked_monitor(clock, s.total_steps)
    _, agent = train_dqn(ENV, s, seed=seed, monitor=mon, target=TARGET, stop_at_target=True, check_episodes=0)   # stop as the peers do
    return clock.summary(agent.env_steps)


def sb3_zoo(seed: int, budget: int = 50_000) -> dict:
    from stable_baselines3 import DQN
    from stable_baselines3.common.monitor import Monitor

    clock = TargetClock(TARGET)

    model = DQN("MlpPolicy", Monitor(gym.make(ENV)), learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device="cpu")
    model.learn(budget, callback=sb3_clock_callback(clock))
    return clock.summary(model.num_timesteps)


def cleanrl(seed: int, budget: int = 500_000) -> dict:
    """CleanRL dqn.py's algorithm and defaults, written out as a plain loop (one env)."""
    from stable_baselines3.common.buffers import ReplayBuffer

    clock = TargetClock(TARGET)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    env = gym.make(ENV)
    env.action_space.seed(seed)
    n_obs, n_act = env.observation_space.shape[0], env.action_space.n
    q = nn.Sequential(nn.Linear(n_obs, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, n_act))
    target = nn.Sequential(nn.Linear(n_obs, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, n_act))
    target.load_state_dict(q.state_dict())
    opt = torch.optim.Adam(q.parameters(), lr=2.5e-4)
    rb = ReplayBuffer(10_000, env.observation_space, env.action_space, "cpu", handle_timeout_termination=False)
    obs, _ = env.reset(seed=seed)
    ep_ret, step = 0.0, 0
    for step in range(1, budget + 1):
        eps = max(1.0 + (0.05 - 1.0) * (step - 1) / (0.5 * budget), 0.05)
        if random.random() < eps:
            action = env.action_space.sample()
        else:
            with torch.no_grad():
                action = int(q(torch.as_tensor(obs, dtype=torch.float32)[None]).argmax())
        next_obs, reward, terminated, truncated, _ = env.step(action)
        ep_ret += reward
        rb.add(obs[None], next_obs[None], np.array([action]), np.array([reward]), np.array([terminated]), [{}])
        obs = next_obs
        if terminated or truncated:
            if clock.episode(ep_ret, step):
                break
            obs, _ = env.reset()
            ep_ret = 0.0
        if step > 10_000:
            if step % 10 == 0:
                data = rb.sample(128)
                with torch.no_grad():
                    y = data.rewards.flatten() + 0.99 * target(data.next_observations).max(dim=1).values * (1 - data.dones.flatten())
                old = q(data.observations).gather(1, data.actions).squeeze()
                loss = F.mse_loss(y, old)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if step % 500 == 0:
                target.load_state_dict(q.state_dict())
    return clock.summary(step)


def main() -> None:
    result = race(__doc__, {"ours": ours, "sb3_zoo": sb3_zoo, "cleanrl": cleanrl}, MAX_STEPS)
    ok = all(v["within_steps"] and v["faster_than_peers"] for v in result["verdict"].values())
    save("dqn_cartpole", {"env": ENV, "target": TARGET, "settings": {k: getattr(DQNSettings(), k) for k in DQNSettings.__dataclass_fields__},
                          **result, "all_pass": ok})


if __name__ == "__main__":
    main()
