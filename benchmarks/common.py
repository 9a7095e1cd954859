"""Helpers shared by the benchmarks: timing, machine info, atomic JSON results."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Callable

from dlroadmap.environment import cpu_model, gemm_peak, machine  # noqa: F401  (benchmarks import them from here)
from dlroadmap.io import write_json

RESULTS = Path(__file__).parent / "results"


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def save(name: str, result: dict[str, Any]) -> Path:
    result = {"benchmark": name, "machine": machine(), **result}
    return write_json(RESULTS / f"{name}.json", result)


class TargetClock:
    """Episode returns as they finish, with the env step and the wall time of each: when did the
    `window`-episode mean first reach `target`? Shared by the RL benchmarks so every contender is
    judged by the same rule (the clock starts when the contender's set-up starts)."""

    def __init__(self, target: float, window: int = 20):
        self.target, self.window = target, window
        self.t0 = time.perf_counter()
        self.returns: list[float] = []
        self.reached: tuple[int, float] | None = None     # (env steps, seconds)

    def episode(self, ret: float, env_steps: int) -> bool:
        """Record one episode; True once the target has been reached."""
        self.returns.append(float(ret))
        if self.reached is None and len(self.returns) >= self.window and statistics.fmean(self.returns[-self.window:]) >= self.target:
            self.reached = (int(env_steps), time.perf_counter() - self.t0)
        return self.reached is not None

    def summary(self, env_steps: int) -> dict[str, Any]:
        return {"reached": self.reached is not None, "steps_to_target": self.reached[0] if self.reached else None,
                "seconds_to_target": round(self.reached[1], 2) if self.reached else None, "env_steps_run": int(env_steps),
                "seconds_run": round(time.perf_counter() - self.t0, 2), "episodes": len(self.returns),
                "last_avg": round(statistics.fmean(self.returns[-self.window:]), 1) if self.returns else None}


def clocked_monitor(clock: TargetClock, total: int):
    """dlroadmap's EpisodeMonitor (what our agents report episodes to) that also feeds `clock`."""
    from dlroadmap.rl.monitor import EpisodeMonitor

    class Clocked(EpisodeMonitor):
        def episode(self, ret, length, env_steps):
            super().episode(ret, length, env_steps)
            clock.episode(ret, env_steps)

    return Clocked(None, "ours", total=total)


def sb3_clock_callback(clock: TargetClock):
    """A stable-baselines3 callback feeding finished episodes (Monitor's info["episode"]) to `clock`;
    it stops training once the target is reached."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Stop(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info and clock.episode(info["episode"]["r"], self.num_timesteps):
                    return False
            return True

    return Stop()


def race(doc: str, contenders: dict[str, Callable[[int], dict[str, Any]]], max_steps: int) -> dict[str, Any]:
    """Run every contender at each seed of `--seeds` (the first contender is ours), printing as it goes.
    Ours passes a seed when it reaches the target within `max_steps` env steps; it is faster when it got
    there in less wall time than each peer took to reach it (a peer that never did counts with the time it ran)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    seeds = [int(s) for s in ap.parse_args().seeds.split(",")]
    runs: dict[str, dict[int, dict]] = {name: {} for name in contenders}
    for seed in seeds:
        for name, fn in contenders.items():
            runs[name][seed] = r = fn(seed)
            print(f"seed {seed} {name:8s} {r}", flush=True)
    ours, *peers = contenders
    verdict = {}
    for seed in seeds:
        o = runs[ours][seed]
        peer_time = [runs[n][seed]["seconds_to_target"] or runs[n][seed]["seconds_run"] for n in peers]
        verdict[seed] = {"within_steps": bool(o["reached"] and o["steps_to_target"] <= max_steps),
                         "faster_than_peers": bool(o["reached"] and all(o["seconds_to_target"] < t for t in peer_time))}
    print(verdict)
    return {"max_steps": max_steps, "runs": runs, "verdict": verdict}
