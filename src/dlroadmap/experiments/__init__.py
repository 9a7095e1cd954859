"""Experiments, one module per roadmap topic in phase folders (p1 ... p4, tools).

Node `p2.cnn.filters` is `filters = Experiment(Config, run_filters)` in `experiments/p2/cnn.py`:
a typed Config (with a quick preset) and run(config, tracker) -> Result. Experiment modules are
leaves: nothing imports them; what they share lives in models/, train/, data/, evaluate/.
Run them through `dlroadmap.runner`.
"""

from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result

__all__ = ["Experiment", "ExperimentConfig", "Result"]
