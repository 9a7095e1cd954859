"""Phase 3, Reinforcement Learning.

  p3.rl.qlearning   Tabular control on gymnasium's toy-text worlds, checked against the exact answer:
                    - FrozenLake 4x4 and 8x8 (slippery): backward induction on the env's own transition
                      table gives the best success rate any policy can reach within the time limit; a
                      10,000-episode simulation of that policy must measure gymnasium's stated optimum
                      (0.74, 0.91), and Q-learning's greedy policy must reach 0.95 of it;
                    - Taxi: Q-learning's greedy policy against value iteration's;
                    - CliffWalking (Sutton & Barto Example 6.6, Figure 6.4): with epsilon 0.1 and alpha 0.5,
                      SARSA earns more while learning (it accounts for its own exploration and walks the
                      safe path), Q-learning less (it learns the optimal path along the cliff and falls
                      off it when it explores).
  p3.rl.policy_gradient  REINFORCE without/with a learned baseline (gradient variance on the same
                    episodes), A2C with GAE and PPO-clip on vectorised CartPole-v1; GAE against
                    stable-baselines3's RolloutBuffer on a real rollout.
  p3.rl.dqn         DQN on the one Trainer (rl/dqn.py): CartPole-v1 to a 20-episode mean of 475 within
                    110,000 env steps, the weights kept there >= 400 greedily on unseen seeds; full mode adds Double DQN and a dueling head at three seeds each,
                    with their over-estimation of Q(s0), and LunarLander-v3 to >= 200 over 100 episodes.
                    `dlr run p3.rl.dqn --resume` continues a killed run bit for bit.

What the numbers showed here: the stated FrozenLake optima are finite-horizon ones (a stationary policy
from value iteration gets 0.740 of 0.744 on 4x4 within 100 steps, 0.894 of 0.913 on 8x8 within 200);
Taxi's registration comment says the optimum is 8.46, but value iteration on Taxi-v4's own table gives
an expected return of 7.93 (10,000 simulated episodes agree), below the registered threshold of 8.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch
from pydantic import Field

from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.rl import tabular as T
from dlroadmap.io import atomic_path, write_json
from dlroadmap.rl.advantages import gae_stable_baselines3
from dlroadmap.rl.dqn import LUNAR, DQNAgent, DQNSettings, QNetwork, greedy_returns, overestimation, train_dqn
from dlroadmap.rl.envs import make_env, require_discrete
from dlroadmap.rl.monitor import EpisodeMonitor, frame_strip, show_strip
from dlroadmap.rl.ppo import A2C, PPOSettings, train_ppo
from dlroadmap.rl.reinforce import ReinforceSettings, collect, gradient_variance, train_reinforce
from dlroadmap.train import Tracker, seed_everything
from dlroadmap.train.checkpoint import save_weights

STATED_OPTIMUM = {"FrozenLake-v1": 0.74, "FrozenLake8x8-v1": 0.91}   # gymnasium's registrations (comments beside reward_threshold)


class QLearningConfig(ExperimentConfig):
    gamma: float = Field(0.99, gt=0, le=1, description="discount of the learners and of value iteration")
    frozen_episodes: int = Field(20_000, ge=1, le=10_000_000, description="Q-learning / SARSA training episodes on FrozenLake 4x4")
    frozen_alpha: tuple[float, float] = Field((0.1, 0.01), description="step size, decayed linearly from the first to the second over training")
    taxi_episodes: int = Field(6_000, ge=1, le=10_000_000)
    taxi_alpha: tuple[float, float] = Field((0.5, 0.05))
    epsilon_end: float = Field(0.05, ge=0, le=1, description="exploration decays linearly from 1 to this over the first half of training")
    eval_episodes: int = Field(10_000, ge=100, le=10_000_000, description="simulated episodes each greedy policy is measured on")
    cliff_runs: int = Field(100, ge=1, le=10_000, description="independent runs the CliffWalking curves are averaged over")
    cliff_episodes: int = Field(500, ge=10, le=100_000)
    cliff_alpha: float = Field(0.5, gt=0, le=1)
    cliff_epsilon: float = Field(0.1, ge=0, le=1)

    QUICK: ClassVar[dict] = {"frozen_episodes": 8_000, "taxi_episodes": 4_000, "cliff_runs": 20}


def _linear(start: float, end: float, n: int):
    return lambda ep: start + (end - start) * min(ep / max(n - 1, 1), 1.0)


def _learn(env, method: str, episodes: int, alpha: tuple[float, float], config: QLearningConfig, tracker: Tracker | None, prefix: str,
           *, seed: int) -> T.TDResult:
    """Q-learning or SARSA with decaying step size and exploration, watched by an EpisodeMonitor."""
    monitor = EpisodeMonitor(tracker, prefix, total=episodes, unit="episodes", window=100, log_every=max(episodes // 200, 1))
    steps = 0

    def on_episode(ep: int, res: T.TDResult) -> None:
        nonlocal steps
        steps += int(res.lengths[ep])
        monitor.episode(res.returns[ep], res.lengths[ep], steps)

    explore = _linear(1.0, config.epsilon_end, episodes // 2)
    with monitor.live():
        return T.td_control(env, method, episodes, alpha=_linear(*alpha, episodes), gamma=config.gamma,
                            epsilon=explore, seed=seed, on_episode=on_episode)


def run_qlearning(config: QLearningConfig, tracker: Tracker) -> Result:
    seed_everything(config.seed)
    m: dict[str, float] = {}
    rng = np.random.default_rng(config.seed)
    sim_seed = lambda: int(rng.integers(2**31))                              # noqa: E731  fresh evaluation seeds

    # 1. FrozenLake: the optimum within the time limit, measured; Q-learning and SARSA against it.
    frozen: dict[str, dict] = {}
    for env_id in ("FrozenLake-v1", "FrozenLake8x8-v1"):
        env = make_env(env_id)
        require_discrete(env, "tabular Q-learning", observations=True)
        model, H = T.transition_model(env), env.spec.max_episode_steps
        best, timed_policy = T.finite_horizon_optimum(model, H)
        measured = T.run_policy(env, timed_policy, config.eval_episodes, sim_seed()).mean()
        Qstar, iters = T.value_iteration(model, config.gamma)
        key = "frozen" if env_id == "FrozenLake-v1" else "frozen8x8"
        m[f"{key}_optimum_exact"], m[f"{key}_optimum_measured"] = best, float(measured)
        m[f"{key}_optimum_error"] = abs(float(measured) - STATED_OPTIMUM[env_id])
        m[f"{key}_value_iteration_exact"] = T.policy_return(model, T.greedy(Qstar), H)
        frozen[env_id] = {"env": env, "model": model, "H": H, "Qstar": Qstar, "iters": iters}

    f = frozen["FrozenLake-v1"]
    env, model, H = f["env"], f["model"], f["H"]
    learned = {}
    for method in ("q", "sarsa"):
        res = _learn(env, method, config.frozen_episodes, config.frozen_alpha, config, tracker, f"frozen_{method}", seed=config.seed)
        policy = T.greedy(res.Q)
        sims = T.run_policy(env, policy, config.eval_episodes, sim_seed())
        exact = T.policy_return(model, policy, H)
        learned[method] = (res, policy)
        m[f"frozen_{method}_success"], m[f"frozen_{method}_exact"] = float(sims.mean()), exact
        m[f"frozen_{method}_ratio"] = float(sims.mean()) / m["frozen_optimum_measured"]
        # The simulation against the exact value: a z-score, |sim - exact| / standard error.
        m[f"frozen_{method}_sim_z"] = abs(float(sims.mean()) - exact) / np.sqrt(max(exact * (1 - exact), 1e-12) / config.eval_episodes)
        m[f"frozen_{method}_states_off_optimal"] = float((~T.optimal_actions(f["Qstar"])[np.arange(model.n_states), policy]).sum())

    # 2. Taxi: value iteration's expected return against Q-learning's greedy policy.
    taxi = make_env("Taxi-v4")
    tmodel, tH = T.transition_model(taxi), taxi.spec.max_episode_steps
    tQ, _ = T.value_iteration(tmodel, config.gamma)
    m["taxi_optimum_exact"] = T.policy_return(tmodel, T.greedy(tQ), tH)
    tres = _learn(taxi, "q", config.taxi_episodes, config.taxi_alpha, config, tracker, "taxi_q", seed=config.seed)
    tpolicy = T.greedy(tres.Q)
    m["taxi_q_exact"] = T.policy_return(tmodel, tpolicy, tH)
    m["taxi_q_return"] = float(T.run_policy(taxi, tpolicy, config.eval_episodes, sim_seed()).mean())
    m["taxi_q_ratio"] = m["taxi_q_exact"] / m["taxi_optimum_exact"]

    # 3. CliffWalking, Sutton & Barto Figure 6.4: constant epsilon and alpha, gamma 1, averaged over runs.
    cliff = make_env("CliffWalking-v1")
    curves = {"sarsa": np.zeros((config.cliff_runs, config.cliff_episodes)), "q": np.zeros((config.cliff_runs, config.cliff_episodes))}
    greedy_returns: dict[str, list[float]] = {"sarsa": [], "q": []}
    paths: dict[str, list[list[int]]] = {"sarsa": [], "q": []}
    for method in ("sarsa", "q"):
        monitor = EpisodeMonitor(tracker, f"cliff_{method}", total=config.cliff_runs)   # its bar only, counted in runs
        with monitor.live():
            for run in range(config.cliff_runs):
                res = T.td_control(cliff, method, config.cliff_episodes, alpha=config.cliff_alpha, gamma=1.0,
                                   epsilon=config.cliff_epsilon, seed=config.seed * 100_003 + run)
                curves[method][run] = res.returns
                states, ret = T.greedy_path(cliff, res.Q)
                greedy_returns[method].append(ret)
                paths[method].append(states)
                monitor.advance(run + 1, f"run {run + 1}/{config.cliff_runs}, greedy return {ret:.0f}")
        mean_curve = curves[method].mean(0)
        for ep in range(0, config.cliff_episodes, max(config.cliff_episodes // 100, 1)):
            tracker.log_metrics({f"cliff_{method}/mean_episode_return": float(mean_curve[ep])}, step=ep)
        skip = min(100, config.cliff_episodes // 5)                         # after the first, exploratory episodes
        m[f"cliff_{method}_online"] = float(curves[method][:, skip:].mean())
        g = np.asarray(greedy_returns[method])
        m[f"cliff_{method}_greedy_optimal_fraction"] = float((g == -13).mean())
        m[f"cliff_{method}_greedy_safe_fraction"] = float(((g < -13) & (g > -100)).mean())   # reaches the goal, away from the edge
    m["cliff_sarsa_minus_q_online"] = m["cliff_sarsa_online"] - m["cliff_q_online"]

    taxi_act = lambda s: int(tpolicy[s])                                   # noqa: E731
    shots = frame_strip("Taxi-v4", taxi_act, frames=8, seed=config.seed)
    fig = _figure(m, frozen, learned, curves, paths, config, shots)
    plots = {"qlearning_report": tracker.log_figure(fig, "qlearning_report")}
    plt.close(fig)
    return Result(metrics=m, artifacts={k: str(v) for k, v in plots.items()},
                  notes=f"FrozenLake optimum {m['frozen_optimum_measured']:.3f} measured (stated 0.74); Q-learning {m['frozen_q_success']:.3f}; "
                        f"CliffWalking online SARSA {m['cliff_sarsa_online']:.1f} vs Q {m['cliff_q_online']:.1f}")


def _grid_arrows(ax, policy: np.ndarray, desc: np.ndarray, values: np.ndarray, title: str, wrong: np.ndarray | None = None) -> None:
    """A FrozenLake map: state values as colour, the policy as arrows (red where it is not optimal)."""
    n = desc.shape[0]
    ax.imshow(values.reshape(n, n), cmap="Blues", vmin=0, vmax=max(values.max(), 1e-9))
    moves = {0: (-1, 0), 1: (0, 1), 2: (1, 0), 3: (0, -1)}             # LEFT DOWN RIGHT UP as (column, row) steps
    for s in range(n * n):
        r, c = divmod(s, n)
        tile = desc[r, c]
        if tile in (b"H", b"G"):
            ax.text(c, r, tile.decode(), ha="center", va="center", fontsize=9, weight="bold", color="k" if tile == b"G" else "r")
            continue
        ddx, ddy = moves[int(policy[s])]
        colour = "red" if wrong is not None and wrong[s] else "k"
        ax.arrow(c - 0.25 * ddx, r - 0.25 * ddy, 0.3 * ddx, 0.3 * ddy, head_width=0.15, color=colour, length_includes_head=True)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def _figure(m, frozen, learned, curves, paths, config: QLearningConfig, shots) -> plt.Figure:
    fig = plt.figure(figsize=(15, 9))
    grid = fig.add_gridspec(3, 3, height_ratios=[1.1, 1.1, 0.7])
    f = frozen["FrozenLake-v1"]
    desc = f["env"].unwrapped.desc
    V = f["Qstar"].max(1)
    _grid_arrows(fig.add_subplot(grid[0, 0]), T.greedy(f["Qstar"]), desc, V,
                 f"FrozenLake 4x4: value iteration (gamma {config.gamma})\nV* and greedy policy; {f['iters']} sweeps")
    wrong = ~T.optimal_actions(f["Qstar"])[np.arange(f["model"].n_states), learned["q"][1]]
    _grid_arrows(fig.add_subplot(grid[0, 1]), learned["q"][1], desc, learned["q"][0].Q.max(1),
                 f"Q-learning's greedy policy (red: not optimal)\nsuccess {m['frozen_q_success']:.3f} vs optimum {m['frozen_optimum_measured']:.3f}", wrong)
    ax = fig.add_subplot(grid[0, 2])
    for method, label in (("q", "Q-learning"), ("sarsa", "SARSA")):
        r = learned[method][0].returns
        w = max(len(r) // 50, 1)
        ax.plot(np.convolve(r, np.ones(w) / w, mode="valid"), label=f"{label} (behaviour policy)")
    ax.axhline(m["frozen_optimum_exact"], color="k", ls="--", lw=0.8, label=f"optimum {m['frozen_optimum_exact']:.3f}")
    ax.set_xlabel("episode"), ax.set_ylabel("success rate (moving mean)"), ax.legend(fontsize=8)
    ax.set_title("FrozenLake 4x4 while learning (epsilon decays to {:.2f})".format(config.epsilon_end), fontsize=9)

    ax = fig.add_subplot(grid[1, 0:2])
    for method, label in (("sarsa", "SARSA"), ("q", "Q-learning")):
        c = curves[method].mean(0)
        ax.plot(np.convolve(c, np.ones(10) / 10, mode="valid"), label=f"{label}: {m[f'cliff_{method}_online']:.1f} per episode")
    ax.set_ylim(-100, 0), ax.set_xlabel("episode"), ax.set_ylabel("sum of rewards during episode")
    ax.set_title(f"CliffWalking (Sutton & Barto Fig. 6.4): epsilon {config.cliff_epsilon}, alpha {config.cliff_alpha}, "
                 f"mean of {config.cliff_runs} runs, 10-episode smoothing", fontsize=9)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[1, 2])
    ax.add_patch(plt.Rectangle((0.5, 2.5), 10, 1, color="#f4b6b6"))         # the cliff: row 3, columns 1..10
    for method, colour in (("sarsa", "tab:blue"), ("q", "tab:orange")):
        states = max(paths[method], key=paths[method].count)                 # the most common greedy path
        rc = np.array([divmod(s, 12) for s in states])
        ax.plot(rc[:, 1], rc[:, 0], "o-", color=colour, ms=3,
                label=f"{'SARSA' if method == 'sarsa' else 'Q-learning'}: {len(states) - 1} steps")
    ax.set_xlim(-0.5, 11.5), ax.set_ylim(3.5, -0.5), ax.set_aspect("equal"), ax.legend(fontsize=8, loc="upper left")
    ax.set_title("greedy paths after learning (most common over runs); red = cliff", fontsize=9)
    show_strip(fig.add_subplot(grid[2, :]), shots, f"Taxi-v4: one episode of the Q-learning agent (expected return "
               f"{m['taxi_q_exact']:.2f}; value iteration {m['taxi_optimum_exact']:.2f})")
    fig.tight_layout()
    return fig


def _learning_curves(ax, curves: dict[str, EpisodeMonitor], target: float, title: str, ylabel: str) -> None:
    """20-episode moving means of episode return against env steps, one line per labelled monitor, and the target."""
    for label, mon in curves.items():
        r = np.asarray(mon.returns)
        w = min(20, len(r))
        ax.plot(np.asarray(mon.steps_at)[w - 1:], np.convolve(r, np.ones(w) / w, mode="valid"), label=label)
    ax.axhline(target, color="k", ls="--", lw=0.8, label=f"target {target:g}")
    ax.set_xlabel("env steps"), ax.set_ylabel(ylabel), ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)


class PolicyGradientConfig(ExperimentConfig):
    env: str = Field("CartPole-v1", description="a gymnasium env with a vector observation and discrete actions")
    reinforce_iterations: int = Field(60, ge=1, le=100_000, description="REINFORCE updates (8 episodes each), with and without baseline")
    variance_episodes: int = Field(100, ge=10, le=100_000, description="episodes the two gradient estimators are compared on")
    a2c_steps: int = Field(150_000, ge=1_000, le=100_000_000, description="env steps of the actor-critic (GAE) run")
    ppo_steps: int = Field(150_000, ge=1_000, le=100_000_000, description="env steps of each PPO run (the schedules anneal over them)")
    ppo_seeds: int = Field(3, ge=1, le=100, description="PPO runs at seeds seed, seed+1, ...")
    ppo_stop_at_target: bool = Field(False, description="stop a PPO run once its 20-episode mean reaches the target (the steps to get "
                                                        "there are those of the full run: the schedules depend on ppo_steps only)")
    target: float = Field(475.0, description="CartPole-v1's reward_threshold")

    QUICK: ClassVar[dict] = {"reinforce_iterations": 40, "variance_episodes": 60, "a2c_steps": 40_000, "ppo_seeds": 1, "ppo_stop_at_target": True}


def _gae_against_sb3(r, settings: PPOSettings) -> float:
    """Largest difference between our GAE (advantages and value targets) and stable-baselines3's on a real rollout."""
    adv, returns = gae_stable_baselines3(r.rewards, r.values, r.dones, r.last_value, settings.gamma, settings.lam)
    return float(max((adv - r.advantages).abs().max(), (returns - r.returns).abs().max()))


def run_policy_gradient(config: PolicyGradientConfig, tracker: Tracker) -> Result:
    seed_everything(config.seed)
    m: dict[str, float] = {}
    curves: dict[str, EpisodeMonitor] = {}

    # 1. REINFORCE without and with a learned baseline; the gradient variance at a mid-training policy.
    rs = ReinforceSettings(iterations=config.reinforce_iterations)
    for baseline in (False, True):
        name = "reinforce_baseline" if baseline else "reinforce"
        mon = EpisodeMonitor(tracker, name, total=config.reinforce_iterations * rs.episodes_per_batch, unit="episodes", window=20, log_every=8)
        with mon.live():
            policy, value, snap = train_reinforce(config.env, rs, baseline=baseline, seed=config.seed, monitor=mon,
                                                  snapshot_at=config.reinforce_iterations // 2)
        curves[name] = mon
        m[f"{name}_final_avg20"] = mon.moving_average
    policy.load_state_dict(snap["policy"])
    value.load_state_dict(snap["value"])
    episodes = collect([make_env(config.env) for _ in range(config.variance_episodes)], policy, seed=config.seed + 10_000)
    var = gradient_variance(policy, value, episodes, rs.gamma)
    m.update({f"reinforce_{k}": v for k, v in var.items()})

    # 2. Actor-critic with GAE (A2C), then PPO at each seed.
    mon = EpisodeMonitor(tracker, "a2c", total=config.a2c_steps)
    with mon.live():
        train_ppo(config.env, replace(A2C, total_steps=config.a2c_steps), seed=config.seed, monitor=mon)
    curves["a2c"] = mon
    m["a2c_final_avg20"] = mon.moving_average
    reached, finals, agent = [], [], None
    ppo = replace(PPOSettings(), total_steps=config.ppo_steps)
    for k in range(config.ppo_seeds):
        mon = EpisodeMonitor(tracker, f"ppo_seed{config.seed + k}", total=config.ppo_steps)
        with mon.live():
            net, rollout = train_ppo(config.env, ppo, seed=config.seed + k, monitor=mon,
                                     stop_at=config.target if config.ppo_stop_at_target else None)
        hit = mon.first_reaching(config.target)
        reached.append(hit if hit is not None else float("inf"))
        finals.append(mon.moving_average)
        m[f"ppo_steps_to_target_seed{config.seed + k}"] = reached[-1]
        if k == 0:
            curves["ppo"], agent = mon, net
            m["gae_max_abs_diff_sb3"] = _gae_against_sb3(rollout, ppo)
    m["ppo_steps_to_target_max"] = float(max(reached))
    m["ppo_final_avg20_min"] = float(min(finals))

    act = lambda obs: int(agent.dist(torch.as_tensor(obs, dtype=torch.float32)[None]).probs.argmax())   # noqa: E731
    shots = frame_strip(config.env, act, frames=8, seed=config.seed)
    fig = _pg_figure(m, curves, var, config, shots)
    plots = {"policy_gradient_report": tracker.log_figure(fig, "policy_gradient_report")}
    plt.close(fig)
    return Result(metrics=m, artifacts={k: str(v) for k, v in plots.items()},
                  notes=f"PPO reached a 20-episode mean of {config.target:g} after {m['ppo_steps_to_target_max']:.0f} env steps (worst seed); "
                        f"the baseline cut REINFORCE's gradient variance to {m['reinforce_variance_ratio']:.2f}x")


def _pg_figure(m, curves, var, config: PolicyGradientConfig, shots) -> plt.Figure:
    fig = plt.figure(figsize=(14, 8))
    grid = fig.add_gridspec(2, 3, height_ratios=[1.4, 0.7])
    labels = {"reinforce": "REINFORCE", "reinforce_baseline": "REINFORCE + learned baseline", "a2c": "actor-critic (GAE), A2C",
              "ppo": "PPO (clip 0.2, 20 epochs)"}
    _learning_curves(fig.add_subplot(grid[0, 0:2]), {labels[k]: mon for k, mon in curves.items()}, config.target,
                     f"{config.env}, seed {config.seed}: learning curves", "episode return (20-episode mean)")
    ax = fig.add_subplot(grid[0, 2])
    ax.bar(["b = 0", "b = V(s)"], [var["variance_none"], var["variance_value"]], color=["tab:grey", "tab:green"])
    ax.set_yscale("log"), ax.set_ylabel("total variance of one episode's gradient estimate")
    ax.set_title(f"REINFORCE's gradient variance on the same {config.variance_episodes} episodes\n"
                 f"ratio {var['variance_ratio']:.2f}; cosine of the two mean gradients {var['mean_cosine']:.2f}", fontsize=9)
    show_strip(fig.add_subplot(grid[1, :]), shots, f"{config.env}: one episode of the PPO agent (greedy actions), frames evenly spaced")
    fig.tight_layout()
    return fig


class DQNConfig(ExperimentConfig):
    env: str = Field("CartPole-v1", description="a gymnasium env with a vector observation and discrete actions")
    steps: int = Field(110_000, ge=500, le=100_000_000, description="env steps of each run (epsilon decays over the first 5%)")
    seeds: int = Field(3, ge=1, le=100, description="runs at seeds seed, seed+1, ...; the first is checkpointed and resumable")
    variants: bool = Field(True, description="also run Double DQN and a dueling head at each seed, for steps and over-estimation")
    stop_at_target: bool = Field(False, description="stop a run once it has reached the target and its weights are kept (the steps to "
                                                    "get there are those of the whole run; the rest of it shows whether the agent keeps it)")
    target: float = Field(475.0, description="the 20-episode mean that counts as solved (CartPole-v1's reward_threshold)")
    eval_episodes: int = Field(20, ge=1, le=10_000, description="greedy episodes the trained agent is evaluated on")
    check_episodes: int = Field(10, ge=0, le=1000, description="greedy episodes (env seeds of their own) that must also average the "
                                                            "target before the weights are kept; 0: keep them as the training mean gets there")
    checkpoint_every: int | None = Field(1000, ge=1, description="checkpoint the first run every N Trainer steps (8 env steps each)")
    lunar_steps: int = Field(500_000, ge=0, le=100_000_000, description="env steps of a LunarLander-v3 run (rl/dqn.py LUNAR settings; 0 = skip)")
    lunar_check_every: int = Field(25_000, ge=0, le=100_000_000, description="env steps between the LunarLander agent's greedy checks; "
                                                                           "the best-checked weights are the ones reported (0: the final ones)")
    lunar_check_episodes: int = Field(30, ge=1, le=1000, description="greedy episodes of each LunarLander check (one episode's return varies by "
                                                                   "~130: with 10, seed 1 kept weights that checked 247 and scored 157 on unseen seeds)")

    QUICK: ClassVar[dict] = {"seeds": 1, "variants": False, "lunar_steps": 0, "stop_at_target": True}


def _greedy(q: QNetwork):
    return lambda obs: int(q(torch.as_tensor(obs, dtype=torch.float32)[None]).argmax())


def run_dqn(config: DQNConfig, tracker: Tracker) -> Result:
    m: dict[str, float] = {}
    base = replace(DQNSettings(), total_steps=config.steps)
    variants = {"dqn": base, **({"double": replace(base, double=True), "dueling": replace(base, dueling=True)} if config.variants else {})}
    curves: dict[str, tuple[EpisodeMonitor, DQNAgent]] = {}                # seed-0 run of each variant, for the figure
    reached: dict[str, list[float]] = {v: [] for v in variants}
    over: dict[str, list[float]] = {v: [] for v in variants}
    main = None
    for k in range(config.seeds):
        seed = config.seed + k
        for name, s in variants.items():
            first = k == 0 and name == "dqn"                                   # the checkpointed, resumable run
            mon = EpisodeMonitor(tracker, f"{name}_seed{seed}", total=s.total_steps)
            with mon.live():
                q, agent = train_dqn(config.env, s, seed=seed, monitor=mon, target=config.target, stop_at_target=config.stop_at_target,
                                     check_episodes=config.check_episodes, device=config.device,
                                     checkpoints=tracker.run_dir / "checkpoints" if first else None,
                                     checkpoint_every=config.checkpoint_every, resume=config.resume and first,
                                     description=f"{name} seed {seed}")
            hit = mon.first_reaching(config.target)
            reached[name].append(hit if hit is not None else float("inf"))
            est = overestimation(agent)
            over[name].append(est["overestimation"])
            m[f"{name}_steps_to_target_seed{seed}"] = reached[name][-1]
            if k == 0:
                curves[name] = (mon, agent)
            if first:
                main = (q, agent, mon, est)
    for name in variants:
        m[f"{name}_steps_to_target_max"] = float(max(reached[name]))
        m[f"{name}_overestimation"] = float(np.mean(over[name]))

    # The main run: its final weights and every episode, what `--resume` must reproduce bit for bit.
    q, agent, mon, est = main
    weights = tracker.run_dir / "model" / "q.safetensors"
    with atomic_path(weights, suffix=".safetensors") as tmp:
        save_weights(q.state_dict(), tmp)
    episodes = write_json(tracker.run_dir / "model" / "episodes.json", {"returns": mon.returns, "lengths": mon.lengths, "steps_at": mon.steps_at})
    tracker.log_artifact(weights)
    tracker.log_artifact(episodes)
    # Greedy returns on fresh seeds (neither trained on nor checked on): of the agent kept at the target (the
    # first weights, once the 20-episode mean had got there, whose greedy check also did) and of the final one
    # (a run that goes on can forget: DQN on CartPole often does).
    m["dqn_kept_at_steps"] = float("inf") if agent.kept_at is None else float(agent.kept_at)
    solved = q.online if agent.at_target is None else agent.network(agent.at_target)
    m["dqn_greedy_return_mean"] = float(greedy_returns(config.env, solved, config.eval_episodes, seed=10_000 + config.seed).mean())
    m["dqn_final_greedy_return_mean"] = float(greedy_returns(config.env, q.online, config.eval_episodes, seed=10_000 + config.seed).mean())
    m["dqn_start_q"], m["dqn_start_return"] = est["q_start"], est["return_start"]

    lunar = None
    if config.lunar_steps:
        s = replace(LUNAR, total_steps=config.lunar_steps)
        lmon = EpisodeMonitor(tracker, "lunar", total=s.total_steps, window=100)
        with lmon.live():
            lq, lagent = train_dqn("LunarLander-v3", s, seed=config.seed, monitor=lmon, device=config.device, check_episodes=config.lunar_check_episodes,
                                   check_every=config.lunar_check_every, description="DQN LunarLander-v3")
        # The agent reported is the best-checked one (its check episodes on seeds of their own), measured on
        # 100 other unseen seeds; the final agent beside it, since a run's last weights can sit in a dip.
        final = greedy_returns("LunarLander-v3", lq.online, 100, seed=20_000 + config.seed)
        kept, lret = lq.online, final
        if lagent.best is not None:
            kept = lagent.network(lagent.best)
            lret = greedy_returns("LunarLander-v3", kept, 100, seed=20_000 + config.seed)
        m["lunar_eval_return_mean"], m["lunar_eval_return_std"] = float(lret.mean()), float(lret.std())
        m["lunar_kept_at_steps"] = float(lagent.best_at if lagent.best is not None else lagent.env_steps)
        m["lunar_kept_check_mean"] = lagent.best_check if lagent.best is not None else float("nan")
        m["lunar_final_eval_return_mean"] = float(final.mean())
        m["lunar_train_avg100"] = lmon.moving_average
        lunar = (lmon, kept, lagent)

    shots = frame_strip(config.env, _greedy(solved), frames=8, seed=config.seed)
    lunar_shots = frame_strip("LunarLander-v3", _greedy(lunar[1]), frames=8, seed=config.seed, max_steps=1000) if lunar else None
    fig = _dqn_figure(m, curves, config, shots, lunar, lunar_shots)
    plots = {"dqn_report": tracker.log_figure(fig, "dqn_report")}
    plt.close(fig)
    return Result(metrics=m, artifacts={**{k: str(v) for k, v in plots.items()}, "weights": str(weights), "episodes": str(episodes)},
                  notes=f"DQN reached a 20-episode mean of {config.target:g} after {m['dqn_steps_to_target_max']:.0f} env steps (worst of "
                        f"{config.seeds} seed(s)); greedy return {m['dqn_greedy_return_mean']:.1f} then, {m['dqn_final_greedy_return_mean']:.1f} at the end")


def _dqn_figure(m, curves, config: DQNConfig, shots, lunar, lunar_shots) -> plt.Figure:
    rows = 3 if lunar else 2
    fig = plt.figure(figsize=(14, 4 * rows))
    grid = fig.add_gridspec(rows, 3, height_ratios=[1.4] + [0.7] * (rows - 1))
    labels = {"dqn": "DQN", "double": "Double DQN", "dueling": "dueling DQN"}
    _learning_curves(fig.add_subplot(grid[0, 0:2]), {labels[k]: mon for k, (mon, _) in curves.items()}, config.target,
                     f"{config.env}, seed {config.seed}: learning curves", "episode return (20-episode mean, epsilon-greedy)")
    smooth = lambda v, w: np.convolve(v, np.ones(w) / w, mode="valid")   # noqa: E731
    ax = fig.add_subplot(grid[0, 2])
    for (key, (mon, agent)), colour in zip(curves.items(), ("tab:blue", "tab:orange", "tab:green")):
        n = len(agent.disc_returns)
        w = min(20, n)
        x = np.asarray(mon.steps_at)[w - 1:]
        ax.plot(x, smooth(agent.start_q[:n], w), color=colour, label=f"{labels[key]}: max_a Q(s0, a)")
        ax.plot(x, smooth(agent.disc_returns, w), color=colour, ls=":", label=f"{labels[key]}: discounted return")
    ax.set_xlabel("env steps"), ax.legend(fontsize=7)
    over = "  ".join(f"{labels[k]} {m[f'{k}_overestimation']:+.1f}" for k in curves)
    ax.set_title(f"value estimate vs value obtained (20-episode means)\nlast quarter, estimate - obtained: {over}", fontsize=8)
    who = (f"kept at the target ({m['dqn_kept_at_steps']:,.0f} steps)" if np.isfinite(m["dqn_kept_at_steps"])
           else "at the end (no weights passed the target's check)")
    show_strip(fig.add_subplot(grid[1, :]), shots, f"{config.env}: one episode of the DQN agent {who} (greedy; mean "
               f"greedy return {m['dqn_greedy_return_mean']:.1f} over {config.eval_episodes} episodes; the final agent's "
               f"{m['dqn_final_greedy_return_mean']:.1f})")
    if lunar:
        lmon, _, lagent = lunar
        ax = fig.add_subplot(grid[2, 0])
        r = np.asarray(lmon.returns)
        w = min(100, len(r))
        ax.plot(np.asarray(lmon.steps_at)[w - 1:], smooth(r, w), label=f"training, {w}-episode mean")
        if lagent.checks:
            at, score = np.asarray(lagent.checks).T
            ax.plot(at, score, "o:", ms=3, label=f"greedy checks ({config.lunar_check_episodes} episodes)")
            ax.plot([lagent.best_at], [lagent.best_check], "r*", ms=10, label="kept")
        ax.axhline(200, color="k", ls="--", lw=0.8, label="solved: 200")
        ax.set_xlabel("env steps"), ax.set_ylabel("episode return"), ax.legend(fontsize=7)
        ax.set_title("LunarLander-v3 (Double DQN, rl-zoo settings)", fontsize=9)
        show_strip(fig.add_subplot(grid[2, 1:]), lunar_shots, f"LunarLander-v3: one episode of the DQN agent kept at "
                   f"{m['lunar_kept_at_steps']:,.0f} steps (greedy; mean {m['lunar_eval_return_mean']:.1f} over 100 unseen episodes; "
                   f"the final agent's {m['lunar_final_eval_return_mean']:.1f})")
    fig.tight_layout()
    return fig


qlearning = Experiment(QLearningConfig, run_qlearning)
policy_gradient = Experiment(PolicyGradientConfig, run_policy_gradient)
dqn = Experiment(DQNConfig, run_dqn)
