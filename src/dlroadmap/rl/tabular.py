"""Tabular reinforcement learning: the exact answer, and two ways to learn it from experience.

Toy-text environments (FrozenLake, Taxi, CliffWalking) publish their whole dynamics in
`env.unwrapped.P[s][a] = [(prob, next_state, reward, terminated), ...]`. From that table

  value iteration (Bellman 1957)  computes Q* exactly:
      Q(s, a) <- sum_s' p(s'|s,a) [ r + gamma * (1 - terminated) * max_a' Q(s', a') ]
  policy evaluation               gives any policy's exact expected return within the time limit,
                                  so a simulated success rate can be checked against it;

while the learners never look at the table, they only act and observe (Sutton & Barto ch. 6):

  Q-learning (Watkins 1989)   Q(s,a) += alpha [ r + gamma max_a' Q(s',a')  - Q(s,a) ]   off-policy
  SARSA (Rummery & Niranjan)  Q(s,a) += alpha [ r + gamma Q(s',a')         - Q(s,a) ]   on-policy:
                              a' is the action the epsilon-greedy policy really takes next.

A time-limit truncation is not a terminal state: the target still bootstraps from Q(s').
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Model:
    """An MDP's dynamics as dense arrays (S states, A actions)."""

    P: np.ndarray        # (S, A, S) transition probabilities
    R: np.ndarray        # (S, A)    expected immediate reward
    C: np.ndarray        # (S, A, S) probability of moving to s' *and continuing* (not terminated)
    start: np.ndarray    # (S,)      distribution of the first state

    @property
    def n_states(self) -> int:
        return self.P.shape[0]


def transition_model(env) -> Model:
    """Read an env's own table `P` into arrays; outcomes that share a next state are summed."""
    u = env.unwrapped
    S, A = u.observation_space.n, u.action_space.n
    P, R, C = np.zeros((S, A, S)), np.zeros((S, A)), np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            for prob, s2, reward, terminated in u.P[s][a]:
                P[s, a, s2] += prob
                R[s, a] += prob * reward
                C[s, a, s2] += prob * (not terminated)
    return Model(P, R, C, np.asarray(u.initial_state_distrib, dtype=float))


def value_iteration(model: Model, gamma: float, tol: float = 1e-12, max_iter: int = 100_000) -> tuple[np.ndarray, int]:
    """Q* (S, A) by repeated Bellman optimality backups until the largest change is below tol."""
    # the Bellman optimality backup, @bellman1957dp
    Q = np.zeros_like(model.R)
    for it in range(1, max_iter + 1):
        Q_new = model.R + gamma * model.C @ Q.max(1)            # (S, A, S) @ (S,) -> (S, A)
        delta = np.abs(Q_new - Q).max()
        Q = Q_new
        if delta < tol:
            return Q, it
    return Q, max_iter


def finite_horizon_optimum(model: Model, horizon: int) -> tuple[float, np.ndarray]:
    """The best any policy can do within the time limit, by backward induction (undiscounted):
    V_h(s) = max_a [ r(s,a) + sum_s' C(s,a,s') V_{h-1}(s') ]. Returns the value from the start
    distribution and the time-dependent optimal policy (horizon, S): row t is the action with
    horizon - t steps left. This is the optimum gymnasium's registrations state (FrozenLake 0.74, 8x8 0.91)."""
    V = np.zeros(model.n_states)
    policy = np.zeros((horizon, model.n_states), dtype=int)
    for t in range(horizon - 1, -1, -1):
        Q = model.R + model.C @ V
        policy[t], V = Q.argmax(1), Q.max(1)
    return float(model.start @ V), policy


def greedy(Q: np.ndarray) -> np.ndarray:
    """The greedy policy, one action per state (lowest index among ties)."""
    return Q.argmax(1)


def optimal_actions(Q: np.ndarray, atol: float = 1e-9) -> np.ndarray:
    """(S, A) mask of the actions within atol of the best: several can be optimal."""
    return Q >= Q.max(1, keepdims=True) - atol


def policy_return(model: Model, policy: np.ndarray, horizon: int) -> float:
    """Exact expected undiscounted return of a deterministic policy over `horizon` steps from the start
    distribution (the env's time limit): V_h = r_pi + C_pi V_{h-1}, h = 1..horizon."""
    idx = np.arange(model.n_states)
    r, C = model.R[idx, policy], model.C[idx, policy]            # (S,), (S, S)
    V = np.zeros(model.n_states)
    for _ in range(horizon):
        V = r + C @ V
    return float(model.start @ V)


def run_policy(env, policy: np.ndarray, episodes: int, seed: int) -> np.ndarray:
    """Returns of `episodes` simulated episodes of a deterministic tabular policy (time limit included):
    `policy` is (S,) for a stationary one or (horizon, S) for a time-dependent one."""
    returns = np.empty(episodes)
    timed = policy.ndim == 2
    for ep in range(episodes):
        s, _ = env.reset(seed=seed if ep == 0 else None)     # one seed, then the env's own RNG continues
        total, done, t = 0.0, False, 0
        while not done:
            s, r, terminated, truncated, _ = env.step(int(policy[t, s] if timed else policy[s]))
            t += 1
            total += r
            done = terminated or truncated
        returns[ep] = total
    return returns


@dataclass
class TDResult:
    Q: np.ndarray
    returns: np.ndarray      # return of every training episode (what the behaviour policy earned)
    lengths: np.ndarray


def epsilon_greedy(Q_s: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """A random action with probability epsilon, else a greedy one (ties broken at random: with Q = 0
    everywhere at the start, 'lowest index' would always walk the same way)."""
    if rng.random() < epsilon:
        return int(rng.integers(len(Q_s)))
    values = Q_s.tolist()                       # a handful of actions: plain Python beats three NumPy calls here
    top = max(values)
    best = [a for a, v in enumerate(values) if v == top]
    return best[0] if len(best) == 1 else int(rng.choice(best))


def td_control(env, method: str, episodes: int, *, alpha: float | Callable[[int], float], gamma: float,
               epsilon: float | Callable[[int], float], seed: int, on_episode: Callable[[int, TDResult], None] | None = None) -> TDResult:
    """Q-learning (method='q') or SARSA (method='sarsa') for `episodes` episodes. alpha and epsilon may be
    schedules (functions of the episode index). Seeded: the same seed gives the same table."""
    # the Q-learning update: bootstrap from max_a' Q(s', a'), @watkins1989learning
    # SARSA and Q-learning (sec. 6.4 and 6.5), @sutton2018rl
    # SARSA's target uses the action actually taken next, @rummery1994online
    if method not in ("q", "sarsa"):
        raise ValueError(f"method must be 'q' or 'sarsa', got {method!r}")
    rng = np.random.default_rng(seed)
    Q = np.zeros((env.observation_space.n, env.action_space.n))
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=int)
    out = TDResult(Q, returns, lengths)
    for ep in range(episodes):
        lr = alpha(ep) if callable(alpha) else alpha
        eps = epsilon(ep) if callable(epsilon) else epsilon
        s, _ = env.reset(seed=int(rng.integers(2**31)) if ep == 0 else None)
        a = epsilon_greedy(Q[s], eps, rng)
        done, total, n = False, 0.0, 0
        while not done:
            s2, r, terminated, truncated, _ = env.step(a)
            a2 = epsilon_greedy(Q[s2], eps, rng)                   # the action the behaviour policy takes next
            if terminated:
                target = r                                          # no future after a terminal state
            elif method == "q":
                target = r + gamma * Q[s2].max()                    # Watkins: the greedy action's value
            else:
                target = r + gamma * Q[s2, a2]                      # SARSA: the action actually taken
            Q[s, a] += lr * (target - Q[s, a])
            s, a, total, n = s2, a2, total + r, n + 1
            done = terminated or truncated
        returns[ep], lengths[ep] = total, n
        if on_episode is not None:
            on_episode(ep, out)
    return out


def greedy_path(env, Q: np.ndarray, max_steps: int = 200) -> tuple[list[int], float]:
    """States visited and return of one greedy episode in a deterministic env (e.g. CliffWalking)."""
    s, _ = env.reset(seed=0)
    states, total = [int(s)], 0.0
    for _ in range(max_steps):
        s, r, terminated, truncated, _ = env.step(int(Q[s].argmax()))
        states.append(int(s))
        total += r
        if terminated or truncated:
            break
    return states, total
