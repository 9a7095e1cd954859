"""The objective the tuning lessons search: an MLP on the embedded digits, trained by the Trainer.

Four hyperparameters of which one matters far more than the rest, the situation Bergstra & Bengio 2012
call low effective dimensionality: the learning rate decides between learning nothing and learning
well; weight decay, width and dropout move the result by a point or two. Small enough that a study of
hundreds of trials takes seconds per hundred on 2 cores. Selection is on the validation split; the
test split is scored once, for the configuration that was selected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from dlroadmap.data import classification_tensors
from dlroadmap.models.mlp import MLP
from dlroadmap.train.fit import fit_classifier

SPACE = ["lr=loguniform(1e-4,1)", "weight_decay=loguniform(1e-6,1e-1)", "width=int(16,128)", "dropout=uniform(0,0.5)"]
DEFAULTS = {"lr": 1e-3, "weight_decay": 1e-4, "width": 64, "dropout": 0.1}


@dataclass
class Outcome:
    val_curve: list[float]     # validation accuracy after each epoch
    test_accuracy: float       # of the final model (score it only for the selected configuration)

    @property
    def value(self) -> float:
        """The objective: the best validation accuracy over the epochs."""
        return max(self.val_curve)


class _Run:                    # what fit_classifier reads from a config: device, precision, seed
    def __init__(self, seed: int, device: str = "cpu"):
        self.seed, self.device, self.precision = seed, device, "fp32"


def train_digits_mlp(params: dict[str, Any], *, epochs: int = 10, seed: int = 0, data: Any = None, callbacks: tuple = (),
                     batch_size: int = 128) -> Outcome:
    data = data if data is not None else classification_tensors("digits", seed=0)
    p = {**DEFAULTS, **params}
    torch.manual_seed(seed)
    model = MLP(64, [int(p["width"])], 10, dropout=float(p["dropout"]))
    opt = torch.optim.AdamW(model.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
    fitted = fit_classifier(model, data, opt, epochs=epochs, config=_Run(seed), batch_size=batch_size, callbacks=list(callbacks),
                            description="trial")
    return Outcome([h["val_acc"] for h in fitted.history], fitted.test_accuracy)


def ray_trial(params: dict[str, Any], *, epochs: int, seed: int, data: Any = None) -> None:
    """The objective as a Ray Tune trainable: reports validation accuracy every epoch (ASHA's signal), then
    the final result. Runs in a Ray worker with one thread; `data` comes through Ray's object store, so the
    worker never imports scikit-learn to load the digits (~140 MB less per worker)."""
    from ray import tune

    from dlroadmap.tune.pruning import RayReport

    torch.set_num_threads(1)
    outcome = train_digits_mlp(params, epochs=epochs, seed=seed, data=data, callbacks=(RayReport("best_val_accuracy", "val_acc", "max"),))
    tune.report({"best_val_accuracy": outcome.value, "test_accuracy": outcome.test_accuracy, "epoch": len(outcome.val_curve), "final": 1.0})
