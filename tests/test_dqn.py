"""DQN: the two targets against their formulas, the max operator's bias that Double DQN removes, the dueling
head, target updates, the replay buffer, an env rebuilt exactly from a checkpoint, kill -9 + --resume of a
whole `dlr run`, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dlroadmap.rl.dqn import DQNAgent, DQNSettings, QNetwork, QPair, ReplayBuffer, dqn_loss, td_target
from dlroadmap.rl.monitor import EpisodeMonitor


class Fixed(torch.nn.Module):
    """A 'network' that returns given Q-values row by row."""

    def __init__(self, values: torch.Tensor):
        super().__init__()
        self.values = values

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.values[obs[:, 0].long()]


def pair(online: torch.Tensor, target: torch.Tensor) -> QPair:
    q = QPair(1, online.shape[1], DQNSettings(hidden=(4,)))
    q.online, q.target = Fixed(online), Fixed(target)
    return q


def test_targets_follow_their_formulas():
    online = torch.tensor([[1.0, 5.0, 2.0], [0.0, -1.0, 3.0]])
    target = torch.tensor([[4.0, 0.5, 9.0], [7.0, 2.0, 1.0]])
    q = pair(online, target)
    s1 = torch.tensor([[0.0], [1.0]])
    r, term = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0])
    # DQN: r + gamma max_a target; Double DQN: r + gamma target[argmax_a online]; nothing past a terminal state.
    assert torch.allclose(td_target(q, r, s1, term, 0.9, double=False), torch.tensor([1 + 0.9 * 9.0, 2.0]))
    assert torch.allclose(td_target(q, r, s1, term, 0.9, double=True), torch.tensor([1 + 0.9 * 0.5, 2.0]))


def test_max_over_noisy_estimates_overestimates_and_double_does_not():
    """Thrun & Schwartz's point and van Hasselt's fix: every true value is 0 and two independent noisy
    estimates of it play online and target network. max_a of one estimate is biased up by about
    E[max of 10 standard normals] = 1.54; choosing with one and evaluating with the other is unbiased."""
    g = torch.Generator().manual_seed(0)
    n, actions = 20_000, 10
    q = pair(torch.randn(n, actions, generator=g), torch.randn(n, actions, generator=g))
    s1 = torch.arange(n, dtype=torch.float32)[:, None]
    zero = torch.zeros(n)
    plain = td_target(q, zero, s1, zero, 1.0, double=False).mean()
    double = td_target(q, zero, s1, zero, 1.0, double=True).mean()
    assert abs(float(plain) - 1.539) < 0.03
    assert abs(float(double)) < 0.03


def test_double_loss_with_one_pass_equals_two_passes():
    torch.manual_seed(0)
    s = DQNSettings(hidden=(16, 16), double=True)
    q = QPair(4, 3, s)
    for p in q.online.parameters():                     # online and target must differ for this to mean anything
        p.data += 0.1 * torch.randn_like(p)
    b = {"obs": torch.randn(32, 4), "next_obs": torch.randn(32, 4), "action": torch.randint(0, 3, (32,)),
         "reward": torch.randn(32), "terminated": (torch.rand(32) < 0.2).float()}
    loss, q_sa = dqn_loss(q, b, s)
    with torch.no_grad():
        best = q.online(b["next_obs"]).argmax(1, keepdim=True)
        y = b["reward"] + s.gamma * (1 - b["terminated"]) * q.target(b["next_obs"]).gather(1, best).squeeze(1)
    expected = q.online(b["obs"]).gather(1, b["action"][:, None]).squeeze(1)
    assert torch.allclose(q_sa, expected, atol=1e-6)
    assert torch.allclose(loss, torch.nn.functional.smooth_l1_loss(expected, y), atol=1e-6)


def test_dueling_head_is_value_plus_centred_advantage():
    torch.manual_seed(0)
    net = QNetwork(4, 3, (8,), dueling=True)
    x = torch.randn(5, 4)
    h = net.trunk(x)
    assert torch.allclose(net(x).mean(1), net.value(h).squeeze(1), atol=1e-6)     # mean_a Q(s, a) = V(s)
    adv = net.head(h)
    assert torch.allclose(net(x) - net(x).mean(1, keepdim=True), adv - adv.mean(1, keepdim=True), atol=1e-6)


def test_target_update_hard_and_polyak():
    torch.manual_seed(0)
    q = QPair(4, 2, DQNSettings(hidden=(8,)))
    before = [p.clone() for p in q.target.parameters()]
    for p in q.online.parameters():
        p.data += 1.0
    q.update_target(0.25)
    for t, o, b in zip(q.target.parameters(), q.online.parameters(), before):
        assert torch.allclose(t, 0.75 * b + 0.25 * o)
    q.update_target(1.0)
    assert all(torch.equal(t, o) for t, o in zip(q.target.parameters(), q.online.parameters()))


def test_replay_buffer_wraps_and_round_trips():
    buf = ReplayBuffer(5, 2)
    for i in range(7):
        buf.add(np.full(2, i, np.float32), i % 2, float(i), np.full(2, i + 1, np.float32), i == 6)
    assert buf.size == 5 and buf.pos == 2
    assert sorted(buf.reward.tolist()) == [2, 3, 4, 5, 6]            # the two oldest were overwritten
    other = ReplayBuffer(5, 2)
    other.load_state_dict(buf.state_dict())
    b1, b2 = buf.sample(64, np.random.default_rng(1)), other.sample(64, np.random.default_rng(1))
    assert all(torch.equal(b1[k], b2[k]) for k in b1)
    assert torch.equal(b1["next_obs"], b1["obs"] + 1)                # transitions stay whole
    from dlroadmap.errors import CheckpointError

    with pytest.raises(CheckpointError, match="does not fit"):
        ReplayBuffer(3, 2).load_state_dict(buf.state_dict())


def test_epsilon_schedule():
    s = DQNSettings(total_steps=1000, eps_fraction=0.1, eps_start=1.0, eps_end=0.05)
    assert s.epsilon(0) == 1.0 and s.epsilon(100) == pytest.approx(0.05) and s.epsilon(50) == pytest.approx(0.525)
    assert s.epsilon(10_000) == pytest.approx(0.05)


class Lean(torch.nn.Module):
    """A hand-made CartPole policy as Q-values: push the cart the way w . obs says the pole is falling."""

    def __init__(self, w: list[float]):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        z = obs @ self.w                                               # (B,)
        return torch.stack([-z, z], dim=1)                             # (B, 2): left, right


@pytest.mark.parametrize("check_episodes", [10, 0])
def test_weights_are_kept_at_the_target_only_once_the_greedy_check_reaches_it(check_episodes):
    """A 20-episode training mean at the target is not enough: the greedy policy must also average the target
    on episodes of its own (unless check_episodes=0), and checking it leaves every training stream untouched."""
    from types import SimpleNamespace

    s = DQNSettings(hidden=(8,))
    mon = EpisodeMonitor(None, "a", total=1)
    a = DQNAgent("CartPole-v1", s, seed=0, monitor=mon, target=475.0, stop_at_target=True, check_episodes=check_episodes)
    for i in range(20):
        mon.episode(500.0, 500, 500 * (i + 1))                         # a training mean of 500
    rng, env_rng = a.rng.bit_generator.state, a.env.unwrapped.np_random.bit_generator.state
    weak = SimpleNamespace(model=SimpleNamespace(online=Lean([0.0, 0.0, 1.0, 0.0])), should_stop=False)   # ~40 greedily
    a.on_train_batch_end(weak)
    if check_episodes:
        assert a.at_target is None and not weak.should_stop
        assert a.rng.bit_generator.state == rng and a.env.unwrapped.np_random.bit_generator.state == env_rng
        strong = SimpleNamespace(model=SimpleNamespace(online=Lean([0.0, 0.5, 3.0, 1.0])), should_stop=False)   # 500 greedily
        a.on_train_batch_end(strong)
        assert a.at_target is None                                     # no new episode since the last check
        mon.episode(500.0, 500, 10_500)
        a.on_train_batch_end(strong)
        assert a.at_target is not None and a.at_target["w"].tolist() == [0.0, 0.5, 3.0, 1.0] and strong.should_stop
    else:
        assert a.at_target is not None and a.at_target["w"].tolist() == [0.0, 0.0, 1.0, 0.0] and weak.should_stop
    assert a.kept_at == a.env_steps
    b = DQNAgent("CartPole-v1", s, seed=0, monitor=EpisodeMonitor(None, "b", total=1), target=475.0)
    b.load_state_dict(a.state_dict())
    assert b.kept_at == a.kept_at and b._checked == a._checked and b.at_target["w"].equal(a.at_target["w"])


def test_periodic_checks_keep_the_best_checked_weights():
    """With check_every, the greedy policy is checked every N env steps and the best weights so far are
    kept (a later, worse agent does not replace them); the checks survive a checkpoint round trip."""
    from types import SimpleNamespace

    s = DQNSettings(hidden=(8,))
    a = DQNAgent("CartPole-v1", s, seed=0, monitor=EpisodeMonitor(None, "a", total=1), check_every=100, check_episodes=3)
    nets = {"weak": Lean([0.0, 0.0, 1.0, 0.0]), "strong": Lean([0.0, 0.5, 3.0, 1.0])}
    for steps, name in [(50, "weak"), (100, "weak"), (150, "strong"), (200, "strong"), (300, "weak")]:
        a.env_steps = steps
        a.on_train_batch_end(SimpleNamespace(model=SimpleNamespace(online=nets[name]), should_stop=False))
    assert [st for st, _ in a.checks] == [100, 200, 300]                 # at 50 and 150 no check was due
    assert a.checks[1][1] == 500.0 > a.checks[0][1] and a.checks[2][1] < 100
    assert a.best_at == 200 and a.best_check == 500.0 and a.best["w"].tolist() == [0.0, 0.5, 3.0, 1.0]
    assert a.at_target is None                                         # no target given: nothing to stop at
    b = DQNAgent("CartPole-v1", s, seed=0, monitor=EpisodeMonitor(None, "b", total=1), check_every=100, check_episodes=3)
    b.load_state_dict(a.state_dict())
    assert b.checks == a.checks and b.best_at == 200 and b.best["w"].equal(a.best["w"])


@pytest.mark.parametrize("env_id", ["CartPole-v1", "LunarLander-v3"])
def test_agent_state_rebuilds_the_env_mid_episode(env_id):
    """Save the agent mid-episode, load it into a fresh one: the env is rebuilt by replaying the episode's
    actions, and from there both agents see the same observations, rewards and episode ends."""
    s = replace(DQNSettings(hidden=(8,)), eps_fraction=1.0, total_steps=10**6)   # epsilon ~1: random, varied actions
    q = QPair(8 if env_id.startswith("Lunar") else 4, 4 if env_id.startswith("Lunar") else 2, s)
    a = DQNAgent(env_id, s, seed=3, monitor=EpisodeMonitor(None, "a", total=1))
    for _ in range(137):
        a.step(q)
    state = a.state_dict()
    b = DQNAgent(env_id, s, seed=99, monitor=EpisodeMonitor(None, "b", total=1))  # another seed: everything must come from the state
    b.load_state_dict(state)
    assert np.array_equal(a.obs, b.obs) and a.ep_len == b.ep_len > 0
    for _ in range(300):
        a.step(q)
        b.step(q)
        assert np.array_equal(a.obs, b.obs)
    assert a.monitor.returns == b.monitor.returns and len(a.monitor.returns) > 0


def test_a_tampered_episode_is_refused():
    from dlroadmap.errors import CheckpointError

    s = DQNSettings(hidden=(8,))
    a = DQNAgent("CartPole-v1", s, seed=0, monitor=EpisodeMonitor(None, "a", total=1))
    q = QPair(4, 2, s)
    for _ in range(5):
        a.step(q)
    state = a.state_dict()
    state["obs"] = state["obs"] + 1.0
    with pytest.raises(CheckpointError, match="did not reproduce"):
        DQNAgent("CartPole-v1", s, seed=0, monitor=EpisodeMonitor(None, "b", total=1)).load_state_dict(state)


# --- through the CLI -----------------------------------------------------------------------------------

NODE = "p3.rl.dqn"
# 16,000 env steps = 2,000 Trainer steps, a checkpoint every 100 (mostly mid-episode); no early stop.
ARGS = ["--quick", "--set", "steps=16000", "--set", "stop_at_target=false", "--set", "checkpoint_every=100",
        "--set", "eval_episodes=1", "--track", "none"]


def dlr(*args: str) -> list[str]:
    return [sys.executable, "-c", "from dlroadmap.cli import main; main()", *args]


def finish(out, *extra: str) -> None:
    proc = subprocess.run(dlr("run", NODE, *ARGS, "--out", str(out), *extra), capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, DLR_PROGRESS="0"))
    assert proc.returncode in (0, 1), proc.stderr[-2000:]              # 1: a short run may miss the expectations
    assert (out / NODE / "model" / "q.safetensors").is_file()


@pytest.mark.slow
def test_kill9_then_resume_gives_identical_weights_and_episodes(tmp_path):
    from resume_harness import kill_when

    ref, killed = tmp_path / "ref", tmp_path / "killed"
    finish(ref)
    proc = subprocess.Popen(dlr("run", NODE, *ARGS, "--out", str(killed)), env=dict(os.environ, DLR_PROGRESS="0"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    step = kill_when(proc, killed / NODE / "checkpoints" / "latest", lambda step: step >= 700)
    assert not (killed / NODE / "model" / "q.safetensors").exists()

    finish(killed, "--resume")
    a, b = load_file(str(ref / NODE / "model" / "q.safetensors")), load_file(str(killed / NODE / "model" / "q.safetensors"))
    assert a.keys() == b.keys() and {k.split(".")[0] for k in a} == {"online", "target"}
    for k in a:
        assert a[k].equal(b[k]), f"{k} differs after resume (killed after checkpoint {step})"
    ea = json.loads((ref / NODE / "model" / "episodes.json").read_text())
    eb = json.loads((killed / NODE / "model" / "episodes.json").read_text())
    assert ea == eb and len(ea["returns"]) > 20


@pytest.mark.parametrize("env_id, says", [("Pendulum-v1", "discrete action space"), ("CartPol-v1", "unknown gymnasium environment")])
def test_bad_env_is_one_line_and_exit_2(env_id, says, tmp_path):
    proc = subprocess.run(dlr("run", NODE, "--quick", "--set", f"env={env_id}", "--track", "none", "--out", str(tmp_path)),
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, DLR_PROGRESS="0"))
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr
