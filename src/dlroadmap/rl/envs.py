"""Making gymnasium environments with errors a user can act on.

`gymnasium.make` raises a stack of its own exceptions for a misspelt id or a missing extra; here
each becomes one `UserError` line that names the problem and what to do, and an algorithm states
the action space it needs (DQN cannot act in a continuous action space) before it starts.
"""

from __future__ import annotations

from typing import Any

from dlroadmap.errors import UserError

# What the RL nodes use; named in the error for an unknown id.
KNOWN = ("FrozenLake-v1", "FrozenLake8x8-v1", "Taxi-v4", "CliffWalking-v1", "CartPole-v1", "Acrobot-v1", "LunarLander-v3")


def make_env(env_id: str, **kwargs: Any):
    """gymnasium.make(env_id) or one UserError line (unknown id, deprecated version, missing extra)."""
    import gymnasium as gym
    from gymnasium import error

    try:
        return gym.make(env_id, disable_env_checker=True, **kwargs)
    except error.DeprecatedEnv as e:
        raise UserError(f"environment {env_id!r} is an old version: {e}") from None
    except error.DependencyNotInstalled as e:
        raise UserError(f"environment {env_id!r} needs an extra package: {e}") from None
    except error.Error:                      # NameNotFound, VersionNotFound, NamespaceNotFound, ...
        raise UserError(f"unknown gymnasium environment {env_id!r}; try one of {', '.join(KNOWN)}") from None


def require_discrete(env, algorithm: str, *, observations: bool = False) -> None:
    """Refuse an env whose action space (and, for tables, observation space) the algorithm cannot use."""
    from gymnasium import spaces

    env_id = env.spec.id if env.spec else type(env.unwrapped).__name__
    if not isinstance(env.action_space, spaces.Discrete):
        raise UserError(f"{algorithm} needs a discrete action space, but {env_id} has {env.action_space}; "
                        "pick an env with Discrete actions (e.g. CartPole-v1)")
    if observations and not isinstance(env.observation_space, spaces.Discrete):
        raise UserError(f"{algorithm} keeps a table per state and needs a discrete observation space, but {env_id} has "
                        f"{env.observation_space}; pick FrozenLake-v1, Taxi-v4 or CliffWalking-v1")
