"""Phase 4, Hyperparameter Optimization.

  p4.tune.grid_random   Bergstra & Bengio 2012 reproduced: on a space where one of four hyperparameters matters
                        (tune/objective.py: an MLP on digits; the learning rate decides, weight decay, width and
                        dropout barely move it), repeated studies of grid search and random search at equal budgets.
                        A grid spends its budget on every combination of values it fixed in advance, so it tries
                        only budget^(1/4) learning rates; random search tries a new one every trial. Best-so-far
                        curves with bands over the studies; the config each study selects on validation, scored on test.
  p4.tune.optuna_ray    The same objective searched by Optuna's TPE in a sqlite study (opened twice: the second
                        call continues the first), with pruning wired into the Trainer (a callback reports each
                        epoch's validation accuracy): no pruner vs median vs successive halving, in epochs trained,
                        seconds and best value; Optuna's own plots; then Ray Tune with ASHA and OptunaSearch, 2 trials
                        at a time, logged to the run's MLflow store and read back through Ray's ResultGrid and MLflow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
from pydantic import Field

from dlroadmap.data import classification_tensors
from dlroadmap.experiments.base import Experiment, ExperimentConfig, PositiveInt, Result
from dlroadmap.train import Tracker
from dlroadmap.tune.objective import SPACE, train_digits_mlp
from dlroadmap.tune.space import grid, parse_space, random_configs


def _variance_shares(trials: list[tuple[dict, float]], names: list[str], bins: int = 5) -> dict[str, float]:
    """How much of the objective's variance each hyperparameter explains on its own: Var(E[y | x_i binned]) / Var(y)
    over random-search trials (a first-order sensitivity, estimated with quantile bins)."""
    y = np.array([v for _, v in trials])
    out = {}
    for n in names:
        x = np.array([p[n] for p, _ in trials], dtype=float)
        edges = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1])
        which = np.searchsorted(edges, x)
        means = np.array([y[which == b].mean() for b in range(bins) if (which == b).any()])
        sizes = np.array([(which == b).sum() for b in range(bins) if (which == b).any()])
        out[n] = float((sizes * (means - y.mean()) ** 2).sum() / len(y) / max(y.var(), 1e-12))
    return out


# --- p4.tune.grid_random ------------------------------------------------------------------------------


class GridRandomConfig(ExperimentConfig):
    budgets: list[PositiveInt] = Field([16, 81], min_length=1, description="trials per study (a 4-d grid fits 2^4 = 16, 3^4 = 81)")
    studies: int = Field(20, ge=2, le=1000, description="repeated studies per method and budget (bands, win rate)")
    epochs: int = Field(8, ge=1, le=200, description="epochs per trial")

    QUICK: ClassVar[dict] = {"budgets": [16], "studies": 6, "epochs": 5}


def run_grid_random(config: GridRandomConfig, tracker: Tracker) -> Result:
    data = classification_tensors("digits", seed=0)
    dims = parse_space(SPACE)
    names = [d.name for d in dims]
    m: dict[str, float] = {}
    curves: dict[tuple[str, int], np.ndarray] = {}
    random_trials: list[tuple[dict, float]] = []
    for budget in config.budgets:
        points = grid(dims, budget)
        for method in ("grid", "random"):
            best_val, best_test, rows = [], [], []
            for study in range(config.studies):
                seed = config.seed + study                                      # each study's training noise
                rng = np.random.default_rng(seed)
                # A grid's order is arbitrary: shuffled per study, so its best-so-far curve is not an artefact of it.
                trials = [points[i] for i in rng.permutation(len(points))] if method == "grid" else random_configs(dims, budget, 1000 + seed)
                outcomes = [train_digits_mlp(p, epochs=config.epochs, seed=seed, data=data) for p in trials]
                values = np.array([o.value for o in outcomes])
                rows.append(np.maximum.accumulate(values))
                chosen = int(values.argmax())                                   # selected on validation ...
                best_val.append(values[chosen])
                best_test.append(outcomes[chosen].test_accuracy)                # ... and only that one scored on test
                if method == "random":
                    random_trials += list(zip(trials, values))
            curves[(method, budget)] = np.array(rows)
            m[f"{method}_best_val_{budget}"] = float(np.mean(best_val))
            m[f"{method}_selected_test_{budget}"] = float(np.mean(best_test))
            m[f"{method}_best_val_{budget}_worst_study"] = float(np.min(best_val))
        m[f"grid_learning_rates_tried_{budget}"] = float(len({p["lr"] for p in points}))
        m[f"random_minus_grid_{budget}"] = m[f"random_best_val_{budget}"] - m[f"grid_best_val_{budget}"]
        m[f"random_minus_grid_test_{budget}"] = m[f"random_selected_test_{budget}"] - m[f"grid_selected_test_{budget}"]
        m[f"random_wins_{budget}"] = float(np.mean(curves[("random", budget)][:, -1] > curves[("grid", budget)][:, -1]))
    shares = _variance_shares(random_trials, names)
    for n, v in shares.items():
        m[f"variance_share_{n}"] = v
    m["lr_share_over_next"] = shares["lr"] / max(max(v for k, v in shares.items() if k != "lr"), 1e-12)
    fig = _grid_random_figure(curves, random_trials, names, m, config)
    plots = {"grid_vs_random": tracker.log_figure(fig, "grid_vs_random")}
    b = config.budgets[0]
    return Result(metrics=m, artifacts={k: str(v) for k, v in plots.items()},
                  notes=f"{b} trials: random search's best validation accuracy {m[f'random_best_val_{b}']:.3f} vs grid's "
                        f"{m[f'grid_best_val_{b}']:.3f} (the grid tried {int(m[f'grid_learning_rates_tried_{b}'])} learning rates); "
                        f"the learning rate explains {shares['lr']:.0%} of the objective's variance")


def _grid_random_figure(curves: dict, random_trials: list, names: list[str], m: dict, config: GridRandomConfig) -> plt.Figure:
    fig, axes = plt.subplots(1, len(config.budgets) + 1, figsize=(6 * (len(config.budgets) + 1), 4.3))
    for ax, budget in zip(axes, config.budgets):
        for method, colour in (("grid", "tab:orange"), ("random", "tab:blue")):
            c = curves[(method, budget)]
            x = np.arange(1, c.shape[1] + 1)
            ax.plot(x, np.median(c, 0), color=colour, label=f"{method} (mean best {m[f'{method}_best_val_{budget}']:.3f})")
            ax.fill_between(x, np.percentile(c, 10, 0), np.percentile(c, 90, 0), color=colour, alpha=0.2)
        ax.set(xlabel="trials", ylabel="best validation accuracy so far", ylim=(0, 1))
        ax.set_title(f"budget {budget}, {config.studies} studies (median, 10-90% band)\n"
                     f"the grid tries {int(m[f'grid_learning_rates_tried_{budget}'])} learning rates; random wins "
                     f"{m[f'random_wins_{budget}']:.0%} of studies", fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
    ax = axes[-1]
    lr = np.array([p["lr"] for p, _ in random_trials])
    ax.scatter(lr, [v for _, v in random_trials], s=6, alpha=0.5, color="tab:blue")
    ax.set(xscale="log", xlabel="learning rate", ylabel="validation accuracy")
    ax.set_title("random-search trials: the one hyperparameter that matters\nshare of variance: "
                 + ", ".join(f"{n} {m[f'variance_share_{n}']:.2f}" for n in names), fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


grid_random = Experiment(GridRandomConfig, run_grid_random)


# --- p4.tune.optuna_ray -------------------------------------------------------------------------------


class OptunaRayConfig(ExperimentConfig):
    trials: int = Field(40, ge=4, le=10_000, description="trials per Optuna study (TPE)")
    epochs: int = Field(15, ge=2, le=500, description="epochs per trial: the resource the pruners save")
    ray_trials: int = Field(16, ge=1, le=10_000, description="Ray Tune trials (ASHA + OptunaSearch), 2 at a time")
    node_trials: int = Field(20, ge=0, le=1000, description="`dlr tune` studies of real nodes (the MLP, the RNN): trials each; 0 = skip")

    QUICK: ClassVar[dict] = {"trials": 24, "epochs": 8, "ray_trials": 4, "node_trials": 0}


# `dlr tune` on real nodes, around their quick presets: (node, metric, search space). Selected on validation;
# the defaults and the tuned settings are then both scored on the test split.
NODE_STUDIES = {
    "mlp": ("p2.fnn.backprop", "best_val_accuracy", ["lr=loguniform(5e-4,1e-2)", "dropout=uniform(0,0.5)",
                                                     "hidden=choice([256,128],[512,256],[1024,512])", "epochs=int(8,30)"]),
    "rnn": ("p2.rnn.basic", "rnn_best_val_accuracy", ["lr=loguniform(1e-3,3e-2)", "hidden=choice(64,128,256)", "epochs=int(6,20)"]),
}


def _node_studies(config: OptunaRayConfig, tracker: Tracker, m: dict) -> None:
    from dlroadmap import registry
    from dlroadmap.tune.study import TuneJob, tune

    for key, (node_id, metric, space) in NODE_STUDIES.items():
        node = registry.load().get(node_id)
        job = TuneJob(node, parse_space(space, node.load_experiment().Config), backend="optuna", trials=config.node_trials, metric=metric,
                      out=tracker.run_dir, quick=True, seed=config.seed, pruner="none", track="none", name=node_id)
        s = tune(job)
        m[f"{key}_default_val"], m[f"{key}_tuned_val"] = s["default"]["val"], s["tuned"]["val"]
        m[f"{key}_default_test"], m[f"{key}_tuned_test"] = s["default"]["test"], s["tuned"]["test"]
        m[f"{key}_tuned_minus_default_val"] = s["tuned"]["val"] - s["default"]["val"]
        m[f"{key}_tuned_minus_default_test"] = s["tuned"]["test"] - s["default"]["test"]


def _optuna_study(config: OptunaRayConfig, data, path: Path, pruner: str):
    """A TPE study of the digits MLP in the sqlite file, pruning through the Trainer. The first half of the
    trials runs on one study object; the rest on the study loaded afresh from the file (what a restart does)."""
    import optuna

    from dlroadmap.tune.pruning import OptunaPruning
    from dlroadmap.tune.study import open_optuna_study, suggest

    dims = parse_space(SPACE)

    def objective(trial: optuna.Trial) -> float:
        params = {d.name: suggest(trial, d) for d in dims}
        outcome = train_digits_mlp(params, epochs=config.epochs, seed=config.seed, data=data, callbacks=(OptunaPruning(trial, "val_acc"),))
        trial.set_user_attr("test_accuracy", outcome.test_accuracy)
        return outcome.value

    make = lambda: open_optuna_study(path, name=pruner, direction="max", seed=config.seed, pruner=pruner)     # noqa: E731
    t0 = time.perf_counter()
    make().optimize(objective, n_trials=config.trials // 2)
    study = make()                                                               # reopened from sqlite
    study.optimize(objective, n_trials=config.trials - len(study.trials))
    return study, time.perf_counter() - t0


def _ray_study(config: OptunaRayConfig, data, storage: Path, tracking_uri: str, parent: str) -> tuple[list, float]:
    from ray import tune

    from dlroadmap.tune.objective import ray_trial
    from dlroadmap.tune.ray_search import fit_ray

    t0 = time.perf_counter()
    results = fit_ray(tune.with_parameters(ray_trial, epochs=config.epochs, seed=config.seed, data=data), parse_space(SPACE),
                      metric="best_val_accuracy", direction="max", trials=config.ray_trials, seed=config.seed, storage=storage,
                      tracking_uri=tracking_uri, tags={"mlflow.parentRunId": parent, "node": "p4.tune.optuna_ray"}, max_t=config.epochs + 1)
    return results, time.perf_counter() - t0


def run_optuna_ray(config: OptunaRayConfig, tracker: Tracker) -> Result:
    import warnings

    import optuna
    from mlflow.tracking import MlflowClient

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = classification_tensors("digits", seed=0)
    storage = tracker.run_dir / "optuna.db"
    storage.unlink(missing_ok=True)                                              # a fresh study for every run of the node
    m: dict[str, float] = {}
    studies = {}
    full = config.trials * config.epochs
    train_digits_mlp({}, epochs=1, data=data)                                    # warm-up, so the first study's clock is fair
    for pruner in ("none", "median", "halving"):
        study, seconds = _optuna_study(config, data, storage, pruner)
        studies[pruner] = study
        done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
        epochs = sum(len(t.intermediate_values) for t in done)                  # read back from the sqlite study
        m[f"{pruner}_trials"] = float(len(done))
        m[f"{pruner}_pruned"] = float(sum(t.state == optuna.trial.TrialState.PRUNED for t in done))
        m[f"{pruner}_epochs"], m[f"{pruner}_seconds"] = float(epochs), seconds
        m[f"{pruner}_best_val"] = float(study.best_value)
        m[f"{pruner}_selected_test"] = float(study.best_trial.user_attrs["test_accuracy"])
    for pruner in ("median", "halving"):
        m[f"{pruner}_epochs_saved"] = 1 - m[f"{pruner}_epochs"] / m["none_epochs"]
        m[f"{pruner}_seconds_saved"] = 1 - m[f"{pruner}_seconds"] / m["none_seconds"]
        m[f"{pruner}_best_minus_none"] = m[f"{pruner}_best_val"] - m["none_best_val"]
    m["none_epochs_of_budget"] = m["none_epochs"] / full
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=config.seed)          # fANOVA (Hutter et al. 2014)
    importances = optuna.importance.get_param_importances(studies["none"], evaluator=evaluator)
    m["optuna_lr_importance"] = float(importances.get("lr", 0.0))

    # Ray Tune, logged to this run's MLflow store (or a local one when the run is not tracked by MLflow).
    mlflow = tracker.backend("mlflow")
    if mlflow is not None:
        uri, parent = mlflow.tracking_uri, mlflow.run_id
    else:
        uri = f"sqlite:///{(tracker.run_dir / 'mlflow.db').resolve()}"
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("dlroadmap") or client.get_experiment(client.create_experiment("dlroadmap"))
        parent = client.create_run(exp.experiment_id, run_name="p4.tune.optuna_ray (local)").info.run_id
    results, seconds = _ray_study(config, data, tracker.run_dir / "ray_results", uri, parent)
    finished = [r for r in results if r.error is None and (r.metrics or {}).get("final")]
    stopped = [r for r in results if r.error is None and not (r.metrics or {}).get("final")]
    best = max(finished, key=lambda r: r.metrics["best_val_accuracy"])
    client = MlflowClient(uri)
    children = client.search_runs([client.get_experiment_by_name("dlroadmap").experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent}'", max_results=10_000)
    ray_epochs = sum(int((r.metrics or {}).get("epoch", 0)) for r in results)
    m.update({"ray_trials": float(len(results)), "ray_errors": float(sum(r.error is not None for r in results)),
              "ray_stopped_by_asha": float(len(stopped)), "ray_best_val": float(best.metrics["best_val_accuracy"]),
              "ray_selected_test": float(best.metrics["test_accuracy"]), "ray_seconds": seconds,
              "ray_epochs_saved": 1 - ray_epochs / (len(results) * config.epochs),
              "ray_mlflow_runs_missing": float(len(results) - len(children))})

    if config.node_trials:
        _node_studies(config, tracker, m)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                          # optuna's matplotlib plots are "experimental"
        plots = {"optimization_history": tracker.log_figure(optuna.visualization.matplotlib.plot_optimization_history(studies["none"]).figure,
                                                            "optuna_optimization_history"),
                 "param_importances": tracker.log_figure(optuna.visualization.matplotlib.plot_param_importances(studies["none"], evaluator=evaluator).figure,
                                                         "optuna_param_importances"),
                 "intermediate_values": tracker.log_figure(optuna.visualization.matplotlib.plot_intermediate_values(studies["median"]).figure,
                                                           "optuna_pruned_curves_median")}
    plots["pruning"] = tracker.log_figure(_pruning_figure(m, config), "pruning")
    return Result(metrics=m, artifacts={**{k: str(v) for k, v in plots.items()}, "optuna_study": str(tracker.run_dir / "optuna.db")},
                  notes=f"median pruning trained {m['median_epochs_saved']:.0%} fewer epochs ({m['median_seconds_saved']:.0%} less time), "
                        f"best {m['median_best_val']:.3f} vs {m['none_best_val']:.3f} unpruned; Ray Tune + ASHA stopped "
                        f"{int(m['ray_stopped_by_asha'])} of {int(m['ray_trials'])} trials early, best {m['ray_best_val']:.3f}")


def _pruning_figure(m: dict, config: OptunaRayConfig) -> plt.Figure:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    names = ["none", "median", "halving"]
    for ax, key, label in ((axes[0], "epochs", "epochs trained"), (axes[1], "seconds", "seconds"), (axes[2], "best_val", "best validation accuracy")):
        values = [m[f"{n}_{key}"] for n in names]
        ax.bar(names, values, color=["tab:grey", "tab:blue", "tab:green"])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.3f}" if key == "best_val" else f"{v:.0f}" if key == "epochs" else f"{v:.1f}", ha="center", va="bottom", fontsize=8)
        ax.set_title(f"{label} ({config.trials} TPE trials x {config.epochs} epochs)", fontsize=9)
    axes[2].set_ylim(min(m[f"{n}_best_val"] for n in names) - 0.02, 1.0)
    axes[0].set_xlabel(f"pruned trials: median {int(m['median_pruned'])}, halving {int(m['halving_pruned'])}", fontsize=8)
    fig.tight_layout()
    return fig


optuna_ray = Experiment(OptunaRayConfig, run_optuna_ray)
