"""PPO on CartPole-v1: ours against two peers, in the same run, at three seeds.

Each contender trains until its 20-episode mean return first reaches 475 or its own step budget runs
out; the wall clock includes its set-up.

  ours      dlroadmap.rl.ppo with its defaults (rl-baselines3-zoo's CartPole-v1 PPO settings: 8 envs x 32
            steps, 20 epochs of minibatch 256, lr 1e-3 and clip 0.2 annealed, gamma 0.98, lambda 0.8); budget 150k
  sb3_zoo   stable-baselines3's PPO with the same zoo hyperparameters; budget 100k as in the zoo
  cleanrl   a loop with CleanRL ppo.py's defaults (4 envs x 128 steps, lr 2.5e-4 annealed, gamma 0.99, lambda 0.95,
            4 epochs of 4 minibatches, clip 0.2 with clipped value loss, entropy 0.01, 64x64 tanh); budget 500k

    python benchmarks/ppo_cartpole.py                  # 3 seeds
"""

from __future__ import annotations

import os

os.environ.setdefault("DLR_PROGRESS", "0")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from dlroadmap.rl.nets import ActorCritic  # noqa: E402
from dlroadmap.rl.ppo import PPOSettings, train_ppo  # noqa: E402

from common import TargetClock, clocked_monitor, race, save, sb3_clock_callback  # noqa: E402

ENV, TARGET, MAX_STEPS = "CartPole-v1", 475.0, 150_000


def ours(seed: int) -> dict:
    clock = TargetClock(TARGET)
    s = PPOSettings()
    mon = clocked_monitor(clock, s.total_steps)
    train_ppo(ENV, s, seed=seed, monitor=mon, stop_at=TARGET)
    return clock.summary(mon.steps_at[-1] if mon.steps_at else 0)


def sb3_zoo(seed: int, budget: int = 100_000) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    clock = TargetClock(TARGET)

    def linear(v):
        return lambda progress: progress * v

    model = PPO("MlpPolicy", make_vec_env(ENV, n_envs=8, seed=seed), n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
                n_epochs=20, ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed, device="cpu")
    model.learn(budget, callback=sb3_clock_callback(clock))
    return clock.summary(model.num_timesteps)


def cleanrl(seed: int, budget: int = 500_000) -> dict:
    """CleanRL ppo.py's algorithm and defaults, written out as a plain loop."""
    clock = TargetClock(TARGET)
    torch.manual_seed(seed)
    np.random.seed(seed)
    N, T, epochs, n_mb, gamma, lam, clip, ent, vf, lr = 4, 128, 4, 4, 0.99, 0.95, 0.2, 0.01, 0.5, 2.5e-4
    envs = gym.make_vec(ENV, num_envs=N, vectorization_mode="sync", vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    net = ActorCritic(envs.single_observation_space.shape[0], envs.single_action_space.n)
    opt = torch.optim.Adam(net.parameters(), lr=lr, eps=1e-5)
    obs_b, act_b, logp_b, rew_b, done_b, val_b = (torch.zeros(T, N, 4), torch.zeros(T, N, dtype=torch.long), *(torch.zeros(T, N) for _ in range(4)))
    obs = torch.as_tensor(envs.reset(seed=seed)[0], dtype=torch.float32)
    done = torch.zeros(N)
    ep_ret, step, iterations = np.zeros(N), 0, budget // (N * T)
    for it in range(iterations):
        opt.param_groups[0]["lr"] = lr * (1.0 - it / iterations)
        for t in range(T):
            with torch.no_grad():
                dist = net.dist(obs)
                a = dist.sample()
                obs_b[t], act_b[t], logp_b[t], val_b[t], done_b[t] = obs, a, dist.log_prob(a), net.value(obs), done
            o, r, term, trunc, _ = envs.step(a.numpy())
            step += N
            ep_ret += r
            rew_b[t] = torch.as_tensor(r, dtype=torch.float32)
            done = torch.as_tensor(term | trunc, dtype=torch.float32)      # CleanRL treats truncation as an end, no bootstrap
            obs = torch.as_tensor(o, dtype=torch.float32)
            for i in np.flatnonzero(term | trunc):
                if clock.episode(ep_ret[i], step):
                    envs.close()
                    return clock.summary(step)
                ep_ret[i] = 0.0
        with torch.no_grad():
            next_v = net.value(obs)
            adv, last = torch.zeros(T, N), torch.zeros(N)
            for t in reversed(range(T)):
                nonterm = 1.0 - (done if t == T - 1 else done_b[t + 1])
                v1 = next_v if t == T - 1 else val_b[t + 1]
                delta = rew_b[t] + gamma * v1 * nonterm - val_b[t]
                last = delta + gamma * lam * nonterm * last
                adv[t] = last
            ret = adv + val_b
        b = {"obs": obs_b.reshape(-1, 4), "act": act_b.reshape(-1), "logp": logp_b.reshape(-1), "adv": adv.reshape(-1),
             "ret": ret.reshape(-1), "val": val_b.reshape(-1)}
        mb = N * T // n_mb
        for _ in range(epochs):
            perm = torch.randperm(N * T)
            for s0 in range(0, N * T, mb):
                i = perm[s0:s0 + mb]
                dist = net.dist(b["obs"][i])
                ratio = (dist.log_prob(b["act"][i]) - b["logp"][i]).exp()
                a_ = (b["adv"][i] - b["adv"][i].mean()) / (b["adv"][i].std() + 1e-8)
                pg = torch.max(-a_ * ratio, -a_ * ratio.clamp(1 - clip, 1 + clip)).mean()
                v = net.value(b["obs"][i])
                v_clipped = b["val"][i] + (v - b["val"][i]).clamp(-clip, clip)
                v_loss = 0.5 * torch.max((v - b["ret"][i]) ** 2, (v_clipped - b["ret"][i]) ** 2).mean()
                loss = pg - ent * dist.entropy().mean() + vf * v_loss
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), 0.5)
                opt.step()
    envs.close()
    return clock.summary(step)


def main() -> None:
    result = race(__doc__, {"ours": ours, "sb3_zoo": sb3_zoo, "cleanrl": cleanrl}, MAX_STEPS)
    save("ppo_cartpole", {"env": ENV, "target": TARGET, "settings": {k: getattr(PPOSettings(), k) for k in PPOSettings.__dataclass_fields__},
                          **result, "all_pass": all(v["within_steps"] for v in result["verdict"].values())})


if __name__ == "__main__":
    main()
