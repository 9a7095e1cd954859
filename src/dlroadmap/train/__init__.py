"""Training machinery: the Trainer, its callbacks, checkpoints and experiment tracking."""

from dlroadmap.train.callbacks import EMA, Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from dlroadmap.train.checkpoint import latest_checkpoint, load_checkpoint, load_weights, save_checkpoint, save_weights
from dlroadmap.train.tracking import Tracker
from dlroadmap.train.trainer import Trainer, pick_device, seed_everything

__all__ = [
    "EMA", "Callback", "EarlyStopping", "LearningRateMonitor", "ModelCheckpoint", "Tracker", "Trainer", "latest_checkpoint",
    "load_checkpoint", "load_weights", "pick_device", "save_checkpoint", "save_weights", "seed_everything",
]
