"""Time to 0.99 test accuracy on full MNIST, 2 CPU cores: our CNNs (through the Trainer) vs the
network of PyTorch's reference MNIST example (pytorch/examples, mnist/main.py: two 3x3 convs,
max pool, dropout, 9216-128-10, Adadelta lr 1.0 with StepLR gamma 0.7, batch 64) trained by a
hand-written loop, as the peer. The clock runs during training only; the test set is evaluated
at the end of each epoch and the clock stops at the first epoch with accuracy >= 0.99.

Needs the full MNIST files: DLR_DATA_DIR=../shared/data (or a download). Without them it
writes a result that says so and exits 0.

    DLR_DATA_DIR=../shared/data python benchmarks/mnist_time_to_99.py [--max-epochs 6]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("DLR_PROGRESS", "0")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from dlroadmap.data import TensorLoader, load_idx_dataset  # noqa: E402
from dlroadmap.errors import DataError  # noqa: E402
from dlroadmap.evaluate.metrics import accuracy  # noqa: E402
from dlroadmap.models.families import small_cnn  # noqa: E402
from dlroadmap.train import Callback, Trainer, seed_everything  # noqa: E402

from common import save  # noqa: E402

TARGET = 0.99


class ExampleNet(nn.Module):
    """The network of pytorch/examples mnist/main.py (written from its description)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x.unsqueeze(1)))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(torch.flatten(self.dropout1(x), 1)))
        return F.log_softmax(self.fc2(self.dropout2(x)), dim=1)


def test_acc(model, X, y) -> float:
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(X[i:i + 2000]) for i in range(0, len(X), 2000)])
    model.train()
    return accuracy(out, y)


def peer(Xtr, ytr, Xte, yte, max_epochs: int) -> dict:
    seed_everything(0)
    model = ExampleNet()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    loader = TensorLoader(Xtr, ytr, batch_size=64, shuffle=True)
    clock, curve = 0.0, []
    for epoch in range(max_epochs):
        loader.set_epoch(epoch)
        t0 = time.perf_counter()
        model.train()
        for x, y in loader:
            opt.zero_grad()
            loss = F.nll_loss(model(x), y)
            loss.backward()
            opt.step()
        sched.step()
        clock += time.perf_counter() - t0
        acc = test_acc(model, Xte, yte)
        curve.append({"epoch": epoch + 1, "seconds": clock, "test_accuracy": acc})
        print(f"  peer epoch {epoch + 1}: {acc:.4f} after {clock:.1f}s", flush=True)
        if acc >= TARGET:
            break
    return {"curve": curve, "seconds_to_target": clock if curve[-1]["test_accuracy"] >= TARGET else None}


class EvalEachEpoch(Callback):
    """Stops the clock-relevant part: records test accuracy after each epoch, stops at the target."""

    def __init__(self, X, y):
        self.X, self.y, self.curve, self.clock, self.t0 = X, y, [], 0.0, None

    def on_fit_start(self, trainer):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, trainer, metrics):
        self.clock += time.perf_counter() - self.t0
        acc = test_acc(trainer.model, self.X, self.y)
        self.curve.append({"epoch": trainer.epoch, "seconds": self.clock, "test_accuracy": acc})
        print(f"  epoch {trainer.epoch}: {acc:.4f} after {self.clock:.1f}s", flush=True)
        if acc >= TARGET:
            trainer.should_stop = True
        self.t0 = time.perf_counter()


def ours(name: str, Xtr, ytr, Xte, yte, epochs: int, precision: str, lr: float) -> dict:
    seed_everything(0)
    model = small_cnn(name, 10)[0]
    loader = TensorLoader(Xtr, ytr, batch_size=128, shuffle=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * len(loader))
    cb = EvalEachEpoch(Xte, yte)
    Trainer(model, opt, max_epochs=epochs, scheduler=sched, scheduler_interval="step", precision=precision, callbacks=[cb], device="cpu").fit(loader)
    hit = [c for c in cb.curve if c["test_accuracy"] >= TARGET]
    return {"model": name, "precision": precision, "epochs_planned": epochs, "curve": cb.curve,
            "seconds_to_target": hit[0]["seconds"] if hit else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-epochs", type=int, default=6)
    args = ap.parse_args()
    try:
        train, test = load_idx_dataset("mnist")
    except DataError as e:
        save("mnist_time_to_99", {"skipped": str(e)})
        print(f"skipped: {e}")
        return
    mean, std = 33.32, 78.57  # MNIST pixel statistics (0..255), i.e. 0.1307 and 0.3081 after /255
    Xtr, Xte = (torch.from_numpy(train.X) - mean) / std, (torch.from_numpy(test.X) - mean) / std
    ytr, yte = torch.from_numpy(train.y), torch.from_numpy(test.y)
    runs = []
    for name, epochs, precision, lr in (("lenet5", 4, "fp32", 4e-3), ("resnet", 2, "bf16", 4e-3)):
        print(f"ours: {name} ({precision}, one-cycle over {epochs} epochs)", flush=True)
        runs.append(ours(name, Xtr, ytr, Xte, yte, epochs, precision, lr))
    print("peer: pytorch/examples MNIST net, Adadelta, hand-written loop", flush=True)
    ref = peer(Xtr, ytr, Xte, yte, args.max_epochs)
    best = min((r for r in runs if r["seconds_to_target"] is not None), key=lambda r: r["seconds_to_target"], default=None)
    result = {"target": TARGET, "threads": torch.get_num_threads(), "ours": runs, "peer": ref,
              "best_ours": None if best is None else {"model": best["model"], "precision": best["precision"], "seconds": best["seconds_to_target"]},
              "speedup_vs_peer": None if best is None or ref["seconds_to_target"] is None else ref["seconds_to_target"] / best["seconds_to_target"]}
    save("mnist_time_to_99", result)
    print(f"best ours: {result['best_ours']}; peer: {ref['seconds_to_target']}s; speedup {result['speedup_vs_peer']}")


if __name__ == "__main__":
    main()
