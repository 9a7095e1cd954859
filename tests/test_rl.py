"""Reinforcement learning: tabular methods against the exact answer, environment errors, the episode monitor."""

from __future__ import annotations

import numpy as np
import pytest

from dlroadmap.errors import UserError
from dlroadmap.rl import tabular as T
from dlroadmap.rl.envs import make_env, require_discrete
from dlroadmap.rl.monitor import EpisodeMonitor


def policy_iteration(model: T.Model, gamma: float) -> np.ndarray:
    """An independent route to Q*: exact policy evaluation by a linear solve, then greedy improvement."""
    S = model.n_states
    policy = np.zeros(S, dtype=int)
    idx = np.arange(S)
    while True:
        V = np.linalg.solve(np.eye(S) - gamma * model.C[idx, policy], model.R[idx, policy])
        Q = model.R + gamma * model.C @ V
        new = Q.argmax(1)
        if np.all(Q[idx, new] <= Q[idx, policy] + 1e-12):      # no strict improvement anywhere: optimal
            return Q
        policy = new


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "FrozenLake8x8-v1", "Taxi-v4", "CliffWalking-v1"])
def test_value_iteration_matches_policy_iteration(env_id):
    model = T.transition_model(make_env(env_id))
    assert np.allclose(model.P.sum(2), 1.0)
    Q, _ = T.value_iteration(model, 0.95)
    assert np.abs(Q - policy_iteration(model, 0.95)).max() < 1e-8


def test_frozenlake_optimum_is_the_stated_one_and_simulation_agrees():
    """gymnasium states 0.74 for FrozenLake 4x4: backward induction over the 100-step limit gives it, and
    10,000 simulated episodes of that time-dependent policy agree within 4 standard errors."""
    env = make_env("FrozenLake-v1")
    model = T.transition_model(env)
    best, policy = T.finite_horizon_optimum(model, env.spec.max_episode_steps)
    assert abs(best - 0.74) < 0.005
    sims = T.run_policy(env, policy, 10_000, seed=1)
    assert abs(sims.mean() - best) < 4 * np.sqrt(best * (1 - best) / 10_000)
    # A stationary policy cannot beat the time-dependent optimum; value iteration's comes within 0.01.
    Q, _ = T.value_iteration(model, 0.99)
    stationary = T.policy_return(model, T.greedy(Q), env.spec.max_episode_steps)
    assert best - 0.01 < stationary <= best + 1e-12


def test_policy_return_matches_monte_carlo_for_a_poor_policy():
    env = make_env("FrozenLake-v1")
    model = T.transition_model(env)
    policy = np.full(16, 2)                                              # always RIGHT
    exact = T.policy_return(model, policy, 100)
    sims = T.run_policy(env, policy, 20_000, seed=3)
    assert 0 < exact < 0.2
    assert abs(sims.mean() - exact) < 4 * np.sqrt(exact * (1 - exact) / 20_000)


@pytest.mark.parametrize("method", ["q", "sarsa"])
def test_td_control_finds_the_optimal_policy_on_deterministic_frozenlake(method):
    env = make_env("FrozenLake-v1", is_slippery=False)
    model = T.transition_model(env)
    res = T.td_control(env, method, 2000, alpha=0.5, gamma=0.95, epsilon=lambda ep: max(0.01, 1 - ep / 1000), seed=0)
    assert T.policy_return(model, T.greedy(res.Q), 100) == 1.0
    # Q-learning's estimates converge to Q* on the states the greedy path visits.
    if method == "q":
        Qstar, _ = T.value_iteration(model, 0.95)
        s, path = 0, []
        for _ in range(6):
            a = int(res.Q[s].argmax())
            path.append((s, a))
            s = int(model.P[s, a].argmax())
        assert max(abs(res.Q[s, a] - Qstar[s, a]) for s, a in path) < 0.02


def test_td_control_is_seeded():
    env = make_env("Taxi-v4")
    a = T.td_control(env, "q", 50, alpha=0.5, gamma=0.99, epsilon=0.2, seed=7)
    b = T.td_control(env, "q", 50, alpha=0.5, gamma=0.99, epsilon=0.2, seed=7)
    c = T.td_control(env, "q", 50, alpha=0.5, gamma=0.99, epsilon=0.2, seed=8)
    assert np.array_equal(a.Q, b.Q) and np.array_equal(a.returns, b.returns)
    assert not np.array_equal(a.Q, c.Q)


def test_cliff_sarsa_is_safer_than_q_learning_online():
    """Sutton & Barto Example 6.6 in miniature (5 runs): SARSA earns more during learning."""
    env = make_env("CliffWalking-v1")
    online = {}
    for method in ("q", "sarsa"):
        online[method] = np.mean([T.td_control(env, method, 300, alpha=0.5, gamma=1.0, epsilon=0.1, seed=s).returns[100:].mean()
                                  for s in range(5)])
    assert online["sarsa"] - online["q"] > 10


def test_unknown_env_and_wrong_spaces_are_one_line_errors():
    with pytest.raises(UserError, match="unknown gymnasium environment 'CartPol-v1'"):
        make_env("CartPol-v1")
    with pytest.raises(UserError, match="old version"):
        make_env("Taxi-v3")
    with pytest.raises(UserError, match="discrete action space.*Pendulum-v1"):
        require_discrete(make_env("Pendulum-v1"), "DQN")
    with pytest.raises(UserError, match="discrete observation space"):
        require_discrete(make_env("CartPole-v1"), "tabular Q-learning", observations=True)


def test_episode_monitor_first_reaching():
    mon = EpisodeMonitor(None, "x", total=100, window=3)
    steps = 0
    for r in [1, 2, 3, 10, 10, 10, 0]:
        steps += 5
        mon.episode(r, 5, steps)
    # moving averages over 3: 2, 5, 7.67, 10, 6.67 -> first >= 7 ends at episode 5 (index 4, 25 steps)
    assert mon.first_reaching(7) == 25
    assert mon.first_reaching(11) is None


def test_gae_and_returns_match_stable_baselines3_rollout_buffer():
    """Our GAE on a random rollout with episode ends = SB3's RolloutBuffer.compute_returns_and_advantage."""
    import torch

    from dlroadmap.rl.advantages import discounted_returns, gae, gae_stable_baselines3

    T_, N, gamma, lam = 64, 4, 0.98, 0.9
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(T_, N, generator=g, dtype=torch.float64)
    values = torch.randn(T_, N, generator=g, dtype=torch.float64)
    dones = (torch.rand(T_, N, generator=g) < 0.1).double()
    last_value = torch.randn(N, generator=g, dtype=torch.float64)
    adv, targets = gae(rewards, values, dones, last_value, gamma, lam)

    ref_adv, ref_targets = gae_stable_baselines3(rewards, values, dones, last_value, gamma, lam)
    assert np.abs(ref_adv.numpy() - adv.numpy()).max() < 1e-6          # SB3 stores float32
    assert np.abs(ref_targets.numpy() - targets.numpy()).max() < 1e-6
    # lambda = 1 is the Monte-Carlo return minus V: discounted_returns gives the same targets.
    adv1, targets1 = gae(rewards, values, dones, last_value, gamma, 1.0)
    assert torch.allclose(targets1, discounted_returns(rewards, dones, gamma, last_value), atol=1e-12)


def test_ppo_clipped_objective_matches_the_piecewise_formula():
    """L_CLIP per sample (Schulman et al. 2017, eq. 7, drawn in their Figure 1): for A > 0 the ratio is capped at
    1 + eps, for A < 0 floored at 1 - eps; written out case by case and compared."""
    import torch

    from dlroadmap.rl.ppo import clipped_objective

    g = torch.Generator().manual_seed(0)
    old = torch.randn(1000, generator=g, dtype=torch.float64)
    new = old + 0.5 * torch.randn(1000, generator=g, dtype=torch.float64)
    adv = torch.randn(1000, generator=g, dtype=torch.float64)
    eps = 0.2
    rho = (new - old).exp()
    direct = torch.where(adv > 0, torch.minimum(rho, torch.tensor(1 + eps, dtype=torch.float64)) * adv,
                         torch.maximum(rho, torch.tensor(1 - eps, dtype=torch.float64)) * adv)
    assert torch.allclose(clipped_objective(new, old, adv, eps), -direct.mean(), atol=1e-12)
    # Without clipping and at rho = 1 the gradient is the vanilla policy gradient -A * d log pi.
    new1 = old.clone().requires_grad_(True)
    clipped_objective(new1, old, adv, None).backward()
    assert torch.allclose(new1.grad, -adv / len(adv), atol=1e-12)


def test_policy_gradient_node_refuses_bad_envs(cli):
    from test_cli import one_line_error

    one_line_error(*cli("run", "p3.rl.policy_gradient", "--quick", "--track", "none", "--set", "env=Pendulum-v1")[::2],
                   "discrete action space", "Pendulum-v1")
    one_line_error(*cli("run", "p3.rl.policy_gradient", "--quick", "--track", "none", "--set", "env=CartPol-v1")[::2],
                   "unknown gymnasium environment 'CartPol-v1'")
