"""Prompt scoring (nlp/prompting.py) and the prompt tasks (data/prompt_tasks.py)."""

from __future__ import annotations

import re

import numpy as np
import torch

from dlroadmap.data.prompt_tasks import Task, arithmetic, sentiment, topic
from dlroadmap.nlp.prompting import Scorer, accuracy, bootstrap_ci, paired_bootstrap_ci, prefix_text, query_text
from test_llama import TINY, tiny_llama


class CharTokenizer:
    """One token per character: labels of several tokens, as real label words often are."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) % TINY.vocab_size for c in text]

    def ids(self, text: str) -> torch.Tensor:
        return torch.tensor([self.encode(text)])


def test_label_scores_equal_a_full_pass_over_prefix_query_and_label():
    """Queries of different lengths scored in padded batches (of 2: one batch pads, one does not), each
    against a pass of its own over prefix + query + label."""
    model, tok = tiny_llama(), CharTokenizer()
    task = Task("t", (("good film", 1), ("bad film", 0)), ("no", "yes!"), "Say yes or no.", "Q", "A")
    scorer = Scorer(model, tok, task, batch=2)
    demos = [("good film", 1)]
    items = [("bad film", 0), ("a long and rather good film", 1), ("ok", 0)]
    got = scorer.score(demos, items)
    for row, (text, _) in zip(got, items):
        context = tok.encode(prefix_text(task, demos) + query_text(task, text))
        for i, label in enumerate(task.labels):
            full = torch.tensor([context + tok.encode(" " + label)])
            with torch.no_grad():
                lp = model(full)[0].log_softmax(-1)
            n = len(" " + label)
            expected = sum(lp[len(context) - 1 + j, full[0, len(context) + j]] for j in range(n))
            assert abs(row[i] - float(expected)) < 1e-4, (text, label, row[i], float(expected))


def test_calibration_divides_out_the_content_free_preference():
    lp = np.log(np.array([[0.6, 0.4], [0.7, 0.3], [0.55, 0.45]]))
    y = np.array([0, 1, 1])
    assert accuracy(lp, y).tolist() == [1, 0, 0]                      # the model always says label 0
    # With p(label | "N/A") = (0.65, 0.35): 0.6/0.65 < 0.4/0.35 -> 1; 0.7/0.65 > 0.3/0.35 -> 0; 0.55/0.65 < 0.45/0.35 -> 1.
    assert accuracy(lp, y, np.array([0.65, 0.35])).tolist() == [0, 0, 1]


def test_bootstrap_interval_matches_the_normal_approximation():
    correct = (np.random.default_rng(0).random(400) < 0.7).astype(float)
    lo, hi = bootstrap_ci(correct, seed=1, n=4000)
    p = correct.mean()
    half = 1.96 * np.sqrt(p * (1 - p) / len(correct))
    assert lo < p < hi and abs((hi - lo) / 2 - half) < 0.006
    lo, hi = paired_bootstrap_ci(correct, correct)
    assert lo == hi == 0.0


def test_prompt_tasks_are_labelled_right_and_have_200_distinct_items():
    for task in (sentiment(), arithmetic(), topic()):
        texts = [t for t, _ in task.items]
        assert len(set(texts)) == len(texts) >= 200
        used = {label for _, label in task.items}
        assert used <= set(range(len(task.labels))) and (task.name == "arithmetic" or used == set(range(len(task.labels))))
    for text, answer in arithmetic(seed=3).items:     # each answer re-derived from the words
        a, b = map(int, re.findall(r"\d+", text))
        assert answer == (a + b if "more" in text else a - b)
    assert arithmetic(seed=1).items != arithmetic(seed=2).items


def test_demonstrations_stay_balanced_when_the_pool_is_short_of_a_label():
    """The full preset at seed 2 drew a 16-item sentiment pool with too few of one label for 8 balanced shots and
    crashed (IndexError); the shots are now as balanced as the pool allows."""
    import importlib

    import numpy as np

    foundation = importlib.import_module("dlroadmap.experiments.p4.research.foundation")
    short = [(f"a{i}", 0) for i in range(13)] + [(f"b{i}", 1) for i in range(3)]
    demos = foundation._demos(None, short, 8, np.random.default_rng(0))
    assert sorted(label for _, label in demos) == [0] * 5 + [1] * 3 and len(set(demos)) == 8
    even = [(f"a{i}", 0) for i in range(8)] + [(f"b{i}", 1) for i in range(8)]
    assert sorted(label for _, label in foundation._demos(None, even, 8, np.random.default_rng(0))) == [0] * 4 + [1] * 4
