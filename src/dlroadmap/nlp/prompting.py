"""Prompt engineering, measured: few-shot prompts, label scoring, calibration and confidence intervals.

A k-shot prompt is an instruction, k solved examples ("demonstrations") and the query:

    Classify the sentiment of each movie review as positive or negative.

    Review: simplistic , silly and tedious .
    Sentiment: negative

    Review: <query>
    Sentiment:

Label scoring reads the model's log-probability of each label word after "Sentiment:" and picks the
largest: no text is generated, so the answer is always one of the labels (Brown et al. 2020's
evaluation of GPT-3). The instruction and demonstrations are the same for every query, so their keys and
values are computed once (a KV cache) and each query costs only its own tokens.

Two documented weaknesses of few-shot prompting are measured:
  - order sensitivity (Lu et al. 2022, arXiv:2104.08786): the same k examples in another order can move
    accuracy from near chance to near the best;
  - label bias (Zhao et al. 2021, arXiv:2102.09690): the model prefers some labels whatever the input.
    Contextual calibration estimates that preference by asking with a content-free input ("N/A") and
    divides it out: p_cal(y) proportional to p(y | x) / p(y | "N/A")  (their eq. 1 with W = diag(p_cf)^-1, b = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dlroadmap.data.prompt_tasks import Task
from dlroadmap.models.sequence.llama import KVCache

CONTENT_FREE = ("N/A", "", "[MASK]")   # Zhao et al. average over these three inputs


def demo_text(task: Task, text: str, label: int) -> str:
    return f"{task.input_name}: {text}\n{task.output_name}: {task.labels[label]}\n\n"


def prefix_text(task: Task, demos: list[tuple[str, int]]) -> str:
    # the demonstrations' order is part of the prompt: permutations can move accuracy, @lu2022fantastically
    # k-shot prompting: k demonstrations, then the query, no gradient step, @brown2020gpt3
    return f"{task.instruction}\n\n" + "".join(demo_text(task, t, y) for t, y in demos)


def query_text(task: Task, text: str) -> str:
    return f"{task.input_name}: {text}\n{task.output_name}:"


@dataclass
class Scorer:
    """Scores a task's labels after a fixed prefix with one model and tokenizer, `batch` queries at a time."""

    model: torch.nn.Module
    tok: object
    task: Task
    batch: int = 16

    def __post_init__(self):
        # Each label as the tokens that follow "Sentiment:", with its leading space (" positive").
        self.label_ids = [self.tok.encode(" " + label) for label in self.task.labels]

    @torch.no_grad()
    def prefix(self, ids: torch.Tensor) -> KVCache:
        cache = KVCache(len(self.model.layers))
        if ids.shape[1]:
            self.model(ids, cache=cache, last_only=True)
        return cache

    @torch.no_grad()
    def label_logprobs(self, cache: KVCache, queries: list[torch.Tensor]) -> torch.Tensor:
        """log p(label | prefix, query) for every query and label: (B, n_labels).

        The B queries continue the same prefix in one pass, left-padded to the longest: the pad mask keeps
        padding out of attention and gives each query the positions it would have alone (Llama.forward),
        so its scores equal a pass of its own. Labels of several tokens are then scored as a batch
        continuing each query, right-padded (causal attention: padding after a label cannot change its
        own tokens' scores), and their log-probabilities summed."""
        B, past, T = len(queries), cache.length, max(q.shape[1] for q in queries)
        padded = torch.zeros(B, T, dtype=torch.long)
        mask = torch.ones(B, past + T, dtype=torch.bool)                                # True: a real token
        for i, q in enumerate(queries):
            padded[i, T - q.shape[1]:] = q[0]
            mask[i, past: past + T - q.shape[1]] = False
        c = cache.expand(B)
        first = self.model(padded, cache=c, pad_mask=mask, last_only=True)[:, -1].float().log_softmax(-1)   # (B, vocab) after "Sentiment:"
        scores = first[:, [label[0] for label in self.label_ids]]                      # (B, n_labels)
        longest = max(len(ids) for ids in self.label_ids)
        if longest > 1:
            L = len(self.label_ids)
            rest = torch.zeros(L, longest - 1, dtype=torch.long)
            for j, ids in enumerate(self.label_ids):
                rest[j, : len(ids) - 1] = torch.tensor(ids[:-1])
            for i in range(B):                                                         # one query's L continuations
                lp = self.model(rest, cache=c.row(i).expand(L), pad_mask=torch.cat(
                    [mask[i].expand(L, -1), torch.ones(L, longest - 1, dtype=torch.bool)], 1)).float().log_softmax(-1)   # (L, longest - 1, vocab)
                for j, ids in enumerate(self.label_ids):
                    for t in range(1, len(ids)):
                        scores[i, j] += lp[j, t - 1, ids[t]]
        return scores

    def score(self, demos: list[tuple[str, int]], items: list[tuple[str, int]], chat: bool = False) -> np.ndarray:
        """(len(items), n_labels) log-probabilities. chat=True wraps instruction, demos and query in the
        model's chat template instead (a user turn; the label then starts the assistant's turn)."""
        if chat:
            cache = KVCache(len(self.model.layers))                                    # no shared prefix: each item whole
            queries = [torch.cat([self.tok.chat(prefix_text(self.task, demos) + query_text(self.task, text)),
                                  self.tok.ids(f"{self.task.output_name}:")], 1) for text, _ in items]
        else:
            cache = self.prefix(self.tok.ids(prefix_text(self.task, demos)))
            queries = [self.tok.ids(query_text(self.task, text)) for text, _ in items]
        order = sorted(range(len(queries)), key=lambda i: queries[i].shape[1])        # similar lengths together: less padding
        out = torch.empty(len(queries), len(self.label_ids))
        for start in range(0, len(order), self.batch):
            chunk = order[start: start + self.batch]
            out[chunk] = self.label_logprobs(cache, [queries[i] for i in chunk])
        return out.numpy()

    def content_free(self, demos: list[tuple[str, int]]) -> np.ndarray:
        """p(label | prefix, content-free input), averaged over CONTENT_FREE and renormalised: (n_labels,)."""
        # contextual calibration with a content-free input, @zhao2021calibrate
        lp = self.score(demos, [(t, 0) for t in CONTENT_FREE])
        p = np.exp(lp - lp.max(1, keepdims=True))
        p = p / p.sum(1, keepdims=True)
        p = p.mean(0)
        return p / p.sum()


def accuracy(logprobs: np.ndarray, labels: np.ndarray, calibration: np.ndarray | None = None) -> np.ndarray:
    """Per-item correctness (0/1) of the argmax label, after dividing by the content-free probabilities."""
    scores = logprobs - (np.log(calibration) if calibration is not None else 0.0)
    return (scores.argmax(1) == labels).astype(float)


def bootstrap_ci(correct: np.ndarray, seed: int = 0, n: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-item scores (items resampled with replacement)."""
    rng = np.random.default_rng(seed)
    means = correct[rng.integers(0, len(correct), (n, len(correct)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_bootstrap_ci(a: np.ndarray, b: np.ndarray, seed: int = 0, n: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """Interval of mean(a - b) over the same items: the honest way to say "A beats B" on one test set."""
    return bootstrap_ci(np.asarray(a, float) - np.asarray(b, float), seed, n, level)
