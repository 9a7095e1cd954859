"""One experiment per roadmap topic: a typed Config (with a quick preset) and run(config, tracker) -> Result."""

from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result, make_config, run_node

__all__ = ["Experiment", "ExperimentConfig", "Result", "make_config", "run_node"]
