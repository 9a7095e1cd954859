"""What every RL node shows while it learns: env steps and the moving-average return on the progress
bar, episode returns and lengths logged live to the Tracker (MLflow, TensorBoard, ...), and a strip of
rendered frames from one episode of the trained agent for the report."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from typing import Callable, Iterator

import numpy as np

from dlroadmap.rl.envs import make_env


class EpisodeMonitor:
    """Feed it every finished episode (`episode(return, length, env_steps)`); it keeps the history,
    updates a progress task counted in env steps (or episodes) and logs the moving average every
    `log_every` episodes under `prefix/`."""

    def __init__(self, tracker, prefix: str, *, total: int, unit: str = "steps", window: int = 20, log_every: int = 10):
        self.tracker, self.prefix, self.total, self.unit = tracker, prefix, total, unit
        self.window, self.log_every = window, log_every
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.steps_at: list[int] = []                  # env steps done when each episode ended
        self._recent: deque[float] = deque(maxlen=window)
        self._bar = self._task = None

    @contextlib.contextmanager
    def live(self) -> Iterator["EpisodeMonitor"]:
        from dlroadmap.ui import progress

        with progress() as bar:
            self._bar = bar
            self._task = bar.add_task(self.prefix, total=self.total, info="") if bar else None
            try:
                yield self
            finally:
                if bar is not None:
                    bar.remove_task(self._task)
                self._bar = self._task = None

    @property
    def moving_average(self) -> float:
        return float(np.mean(self._recent)) if self._recent else float("nan")

    def episode(self, ret: float, length: int, env_steps: int) -> None:
        self.returns.append(float(ret))
        self.lengths.append(int(length))
        self.steps_at.append(int(env_steps))
        self._recent.append(float(ret))
        n = len(self.returns)
        if self.tracker is not None and n % self.log_every == 0:
            self.tracker.log_metrics({f"{self.prefix}/episode_return": float(ret), f"{self.prefix}/episode_length": float(length),
                                      f"{self.prefix}/return_avg{self.window}": self.moving_average}, step=env_steps)
        if self._bar is not None and n % self.log_every == 0:
            done = env_steps if self.unit == "steps" else n
            self._bar.update(self._task, completed=done, info=f"{n} episodes, avg{self.window} {self.moving_average:.2f}")

    def advance(self, completed: int, info: str) -> None:
        """Move the bar by hand (work counted in runs rather than episodes)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, info=info)

    def first_reaching(self, threshold: float) -> int | None:
        """Env steps when the `window`-episode moving average first reached `threshold` (None: never)."""
        r = np.asarray(self.returns)
        if len(r) < self.window:
            return None
        avg = np.convolve(r, np.ones(self.window) / self.window, mode="valid")   # avg[i] = mean of episodes i .. i+window-1
        hit = np.flatnonzero(avg >= threshold)
        return int(self.steps_at[hit[0] + self.window - 1]) if len(hit) else None


def frame_strip(env_id: str, act: Callable[[object], int], *, frames: int = 8, seed: int = 0, max_steps: int = 500, **env_kwargs) -> list[np.ndarray]:
    """Render one episode of a trained agent (`act(observation) -> action`) and keep `frames` evenly spaced
    frames (first and last included). Needs pygame (gymnasium's classic-control and toy-text renderers)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")   # no display needed for rgb_array
    env = make_env(env_id, render_mode="rgb_array", **env_kwargs)
    obs, _ = env.reset(seed=seed)
    shots = [env.render()]
    for _ in range(max_steps):
        obs, _, terminated, truncated, _ = env.step(act(obs))
        shots.append(env.render())
        if terminated or truncated:
            break
    env.close()
    keep = np.unique(np.linspace(0, len(shots) - 1, frames).round().astype(int))
    return [shots[i] for i in keep]


def show_strip(ax, shots: list[np.ndarray], title: str) -> None:
    """Frames side by side on one axis, separated by a white gap."""
    h = max(s.shape[0] for s in shots)
    gap = np.full((h, 8, 3), 255, dtype=np.uint8)
    row = np.concatenate([np.concatenate([np.pad(s, ((0, h - s.shape[0]), (0, 0), (0, 0)), constant_values=255), gap], 1) for s in shots], 1)
    ax.imshow(row)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
