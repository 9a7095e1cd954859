"""Phase 4, Model Interpretability.

  p4.interpret.shap_lime    Local explanations, each checked against its reference package and then against the model:
                            exact Shapley values (all 2^13 coalitions of wine's features) vs KernelSHAP (ours and
                            shap's) as the coalition budget grows; LIME (tabular, and SLIC superpixels) = lime's with
                            the same seed, and how much it moves between seeds; five gradient methods on an MNIST-5k
                            LeNet-5 = captum's; then deletion/insertion curves (do the top-ranked pixels matter?) and
                            Adebayo et al.'s model-randomisation check (do the attributions depend on the weights?).
                            The trained LeNet-5 is saved as a bundle, with 3 raw test digits, for `dlr explain`.

  p4.interpret.importance   Global feature importance of a random forest on breast_cancer and wine, three ways
                            (interpret/importance.py): permutation importance on held-out rows (= scikit-learn's
                            with the same seed and repeats), drop-column importance (one refit per feature) and
                            impurity importance (= the forest's feature_importances_, from its node arrays). A random
                            ID column (unique per row) and a coin-flip column, both unrelated to the label, show
                            Strobl et al. 2007's bias: impurity importance gives the ID many times the coin's share
                            (it offers a split point between every pair of rows); held-out permutation gives both ~0.
                            Drop-column and permutation both miss what a group of correlated features carries
                            (breast_cancer's radius / perimeter / area): dropping the whole group shows it.
                            SHAP's global importance (mean |KernelSHAP| over held-out rows) sits beside them: it
                            explains the model, so it credits the random ID as much as the forest uses it.
"""

from __future__ import annotations

import contextlib
import io
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch
from pydantic import Field
from scipy.stats import spearmanr

from dlroadmap.data import classification_tensors, load, split
from dlroadmap.deploy.bundle import save_trained
from dlroadmap.experiments.base import Experiment, ExperimentConfig, PositiveInt, Result
from dlroadmap.interpret.faithfulness import auc, deletion_insertion, pixel_order, randomisation_test
from dlroadmap.interpret.gradients import completeness_gap, gradient_shap, gradient_x_input, integrated_gradients, saliency, smoothgrad
from dlroadmap.interpret.importance import drop_column_importance, impurity_importance, permutation_importance
from dlroadmap.interpret.lime import lime_image, lime_tabular, spread, superpixels
from dlroadmap.interpret.shapley import exact_shapley, kernel_shap, superpixel_shap
from dlroadmap.io import atomic_path
from dlroadmap.models.families import small_cnn
from dlroadmap.models.mlp import MLP
from dlroadmap.train import Tracker, seed_everything
from dlroadmap.train.fit import fit_classifier, one_cycle


class ImportanceConfig(ExperimentConfig):
    trees: int = Field(300, ge=1, le=10_000, description="trees in each random forest")
    n_repeats: int = Field(20, ge=1, le=1_000, description="shuffles per feature for permutation importance")
    test: float = Field(0.3, gt=0, lt=1, description="held-out fraction (permutation and drop-column are measured there)")
    shap_rows: int = Field(40, ge=1, le=500, description="held-out rows whose KernelSHAP values make SHAP's global importance")
    shap_coalitions: int = Field(512, ge=16, le=100_000, description="KernelSHAP coalitions per row")

    QUICK: ClassVar[dict] = {"trees": 100, "n_repeats": 5, "shap_rows": 15, "shap_coalitions": 256}


def _names(dataset: str) -> list[str]:
    from sklearn import datasets

    return list(getattr(datasets, f"load_{dataset}")().feature_names)


def _forest(config: ImportanceConfig):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=config.trees, random_state=config.seed, n_jobs=1)


def _study(dataset: str, config: ImportanceConfig, rng: np.random.Generator) -> dict:
    from sklearn.inspection import permutation_importance as sk_permutation

    ds = load(dataset)
    tr, _, te = split(ds, val=0.0, test=config.test, seed=config.seed)
    # Two columns with no information about y, drawn independently of everything: a random ID (a distinct
    # number per row: as many split points as rows) and a coin flip (one split point).
    n = len(tr.X) + len(te.X)
    noise = np.column_stack([rng.permutation(n).astype(float), rng.integers(0, 2, n).astype(float)])
    Xtr, Xte = np.column_stack([tr.X, noise[: len(tr.X)]]), np.column_stack([te.X, noise[len(tr.X):]])
    names = _names(dataset) + ["random_id", "coin"]
    forest = _forest(config).fit(Xtr, tr.y)
    accuracy = lambda X, y: float((forest.predict(X) == y).mean())                # noqa: E731

    impurity = impurity_importance(forest)
    perm, base = permutation_importance(accuracy, Xte, te.y, n_repeats=config.n_repeats, seed=config.seed)
    ref = sk_permutation(forest, Xte, te.y, n_repeats=config.n_repeats, random_state=config.seed, scoring="accuracy")

    def fit_score(cols: np.ndarray) -> float:
        f = _forest(config).fit(Xtr[:, cols], tr.y)
        return float((f.predict(Xte[:, cols]) == te.y).mean())

    drop, _ = drop_column_importance(fit_score, Xtr)
    # SHAP's global importance: mean |phi| over held-out rows, each row explaining the probability of the class
    # the forest predicts for it; background = 10 training rows.
    # (A generator of its own: the noise columns of the next dataset must not depend on SHAP's draws.)
    shap_rng = np.random.default_rng([config.seed, len(Xtr)])
    background = Xtr[shap_rng.choice(len(Xtr), 10, replace=False)]
    phis = []
    for x in Xte[: config.shap_rows]:
        c = int(forest.predict(x[None])[0])
        f = lambda Z, c=c: forest.predict_proba(Z)[:, list(forest.classes_).index(c)]          # noqa: E731
        phis.append(kernel_shap(f, x, background, n_samples=config.shap_coalitions, rng=shap_rng)[0])
    shap_global = np.abs(np.array(phis)).mean(0)
    out = {"names": names, "impurity": impurity, "permutation": perm.mean(1), "permutation_std": perm.std(1), "drop": drop, "shap": shap_global,
           "accuracy": base, "impurity_diff": float(np.abs(impurity - forest.feature_importances_).max()),
           "permutation_diff": float(np.abs(perm - ref.importances).max())}
    if dataset == "breast_cancer":
        # Correlated features: each of radius / perimeter / area (mean, se, worst) stands in for the others.
        group = np.array([i for i, n in enumerate(names) if any(w in n for w in ("radius", "perimeter", "area"))])
        out["group_drop"] = fit_score(np.arange(Xtr.shape[1])) - fit_score(np.setdiff1d(np.arange(Xtr.shape[1]), group))
        out["group_single_max"] = float(drop[group].max())
    return out


def run_importance(config: ImportanceConfig, tracker: Tracker) -> Result:
    rng = np.random.default_rng(config.seed)
    m: dict[str, float] = {}
    studies = {}
    for dataset, key in (("breast_cancer", "bc"), ("wine", "wine")):
        s = studies[dataset] = _study(dataset, config, rng)
        imp, perm = s["impurity"], s["permutation"]
        real = imp[:-2]
        m[f"{key}_forest_accuracy"] = s["accuracy"]
        m[f"{key}_impurity_max_abs_diff_sklearn"] = s["impurity_diff"]
        m[f"{key}_permutation_max_abs_diff_sklearn"] = s["permutation_diff"]
        m[f"{key}_id_impurity_rank"] = float(1 + (real > imp[-2]).sum())           # among the real features; 1 = first
        m[f"{key}_id_impurity_over_median"] = float(imp[-2] / np.median(real))
        m[f"{key}_id_over_coin_impurity"] = float(imp[-2] / max(imp[-1], 1e-12))    # the cardinality bias
        m[f"{key}_id_permutation"], m[f"{key}_coin_permutation"] = float(perm[-2]), float(perm[-1])
        m[f"{key}_id_drop"] = float(s["drop"][-2])
        top = int(np.argmax(perm[:-2]))
        m[f"{key}_top_permutation_feature_drop"] = float(s["drop"][top])
        m[f"{key}_noise_permutation_max_abs"] = float(np.abs(perm[-2:]).max())
        share = lambda v: v / v.sum()                                                    # noqa: E731
        m[f"{key}_id_impurity_share"], m[f"{key}_id_shap_share"] = float(share(imp)[-2]), float(share(s["shap"])[-2])
        m[f"{key}_shap_vs_permutation_rank_corr"] = float(spearmanr(s["shap"][:-2], perm[:-2])[0])
        m[f"{key}_shap_vs_impurity_rank_corr"] = float(spearmanr(s["shap"][:-2], real)[0])
    m["bc_size_group_drop"] = studies["breast_cancer"]["group_drop"]
    m["bc_size_single_drop_max"] = studies["breast_cancer"]["group_single_max"]
    m["bc_size_group_minus_single"] = m["bc_size_group_drop"] - m["bc_size_single_drop_max"]

    fig = _figure(studies, m, config)
    plots = {"importance_report": tracker.log_figure(fig, "importance_report")}
    plt.close(fig)
    return Result(metrics=m, artifacts={k: str(v) for k, v in plots.items()},
                  notes=f"two noise columns on breast_cancer: impurity importance of the random ID {m['bc_id_over_coin_impurity']:.1f}x "
                        f"the coin flip's; permutation importance {m['bc_id_permutation']:+.3f} and {m['bc_coin_permutation']:+.3f}")


def _figure(studies: dict, m: dict, config: ImportanceConfig) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(15, 8))
    for ax, (dataset, s) in zip(axes, studies.items()):
        names = s["names"]
        order = [i for i in np.argsort(s["impurity"][:-2])[::-1][:13]] + [len(names) - 2, len(names) - 1]   # + the two noise columns
        order = np.asarray(order)
        y = np.arange(len(order))[::-1]
        scale = lambda v: v / max(np.abs(v).max(), 1e-12)                          # noqa: E731  each method on its own scale
        for k, (key, label, colour) in enumerate((("impurity", "impurity (training)", "tab:red"),
                                                   ("permutation", f"permutation (held out, {config.n_repeats} repeats)", "tab:blue"),
                                                   ("drop", "drop-column (held out)", "tab:green"),
                                                   ("shap", f"SHAP: mean |KernelSHAP| over {config.shap_rows} held-out rows", "tab:purple"))):
            ax.barh(y + (k - 1.5) * 0.2, scale(s[key])[order], height=0.2, color=colour, label=label)
        ax.set_yticks(y, [names[i] for i in order], fontsize=8)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_xlabel("importance, each method scaled to its largest value")
        ax.set_title(f"{dataset}: random forest ({config.trees} trees), held-out accuracy {s['accuracy']:.3f}\n"
                     f"noise columns: random_id's impurity importance {m[('bc' if dataset == 'breast_cancer' else 'wine') + '_id_over_coin_impurity']:.1f}x "
                     f"the coin's; permutation {s['permutation'][-2]:+.3f} and {s['permutation'][-1]:+.3f}", fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


importance = Experiment(ImportanceConfig, run_importance)


# --- p4.interpret.shap_lime ---------------------------------------------------------------------------


class ShapLimeConfig(ExperimentConfig):
    background: int = Field(20, ge=1, le=500, description="background rows for SHAP's value function (training rows)")
    rows: int = Field(10, ge=1, le=178, description="test rows of wine explained by exact Shapley, KernelSHAP and LIME")
    kernel_budgets: list[PositiveInt] = Field([32, 64, 128, 256, 512, 1024, 2048], description="KernelSHAP coalition budgets (convergence plot)")
    kernel_repeats: int = Field(10, ge=1, le=100, description="seeds per budget in the convergence plot")
    lime_samples: list[PositiveInt] = Field([200, 5000], min_length=2, max_length=2, description="LIME perturbations: few, many (instability across seeds)")
    lime_seeds: int = Field(10, ge=2, le=100, description="seeds per LIME explanation (instability)")
    cnn_epochs: int = Field(8, ge=1, le=100, description="epochs of the MNIST-5k LeNet-5 whose predictions are explained")
    images: int = Field(32, ge=2, le=750, description="test digits explained by every method")
    ig_steps: int = Field(50, ge=2, le=1000, description="integrated-gradients quadrature points (Gauss-Legendre)")
    noise_samples: int = Field(50, ge=1, le=1000, description="noisy copies for SmoothGrad and draws for GradientSHAP")
    noise_level: float = Field(0.15, ge=0, le=1, description="SmoothGrad's sigma as a fraction of the input's range")
    superpixels: int = Field(40, ge=4, le=200, description="SLIC superpixels asked for (LIME and KernelSHAP on images)")
    image_samples: int = Field(1000, ge=10, le=20_000, description="perturbations per image for LIME and KernelSHAP")
    random_orders: int = Field(5, ge=1, le=100, description="random pixel orderings: the deletion/insertion yardstick")

    QUICK: ClassVar[dict] = {"rows": 5, "kernel_budgets": [32, 128, 512, 2048], "kernel_repeats": 4, "lime_seeds": 6,
                             "cnn_epochs": 4, "images": 12, "noise_samples": 20, "image_samples": 400, "random_orders": 3}


def _lime_weights(explanation, label: int, n: int) -> np.ndarray:
    """The lime package's answer, (feature, weight) pairs sorted by |weight|, as an array in feature order."""
    coef = np.zeros(n)
    for i, c in explanation.local_exp[label]:
        coef[i] = c
    return coef


def _tabular(config: ShapLimeConfig, m: dict, tracker: Tracker) -> dict:
    """Wine (13 features, so all 8192 coalitions can be enumerated) and an MLP trained on its standardised
    features; explained: the probability of each row's predicted class, as a function of the raw features."""
    import shap
    from lime.lime_tabular import LimeTabularExplainer

    data = classification_tensors("wine", seed=config.seed, scale="feature")
    seed_everything(config.seed)
    net = MLP(13, [32], 3)
    fit_classifier(net, data, torch.optim.Adam(net.parameters(), lr=1e-2), epochs=60, config=config, tracker=tracker, prefix="wine_mlp",
                   batch_size=32)
    mean, std = np.asarray(data.mean), np.asarray(data.std)
    raw = lambda t: t.numpy().astype(float) * std + mean                          # noqa: E731  back to the dataset's units
    X_train, X_test = raw(data.X_train), raw(data.X_test)
    mu, sd = X_train.mean(0), X_train.std(0)                                      # LIME's sampling statistics
    net = net.cpu().double().eval()

    def proba(Z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(net(torch.as_tensor((Z - mean) / std)), -1).numpy()

    rng = np.random.default_rng(config.seed)
    background = X_train[rng.choice(len(X_train), min(config.background, len(X_train)), replace=False)]
    rows = X_test[: config.rows]
    out: dict = {"exact": [], "kernel_err": {b: [] for b in config.kernel_budgets}, "shap_err": {b: [] for b in config.kernel_budgets},
                 "lime": [], "names": _names("wine")}
    gaps, full_ours, full_shap, lime_diff = [], [], [], []
    rho = {n: [] for n in config.lime_samples}
    for x in rows:
        label = int(proba(x[None])[0].argmax())
        f = lambda Z, c=label: proba(Z)[:, c]                                     # noqa: E731
        phi, base = exact_shapley(f, x, background)
        out["exact"].append(phi)
        gaps.append(abs(phi.sum() - (f(x[None])[0] - base)))                       # efficiency of Shapley's formula
        full_ours.append(np.abs(kernel_shap(f, x, background, n_samples=2 ** 13)[0] - phi).max())
        explainer = shap.KernelExplainer(f, background, link="identity")
        full_shap.append(np.abs(explainer.shap_values(x[None], nsamples=2 ** 13, l1_reg=False, silent=True)[0] - phi).max())
        for b in config.kernel_budgets:
            for r in range(config.kernel_repeats):
                out["kernel_err"][b].append(np.abs(kernel_shap(f, x, background, b, np.random.default_rng(1000 * r + b))[0] - phi).max())
                np.random.seed(1000 * r + b)                                       # shap samples from numpy's global generator
                out["shap_err"][b].append(np.abs(explainer.shap_values(x[None], nsamples=b, l1_reg=False, silent=True)[0] - phi).max())
        # LIME with the lime package's own sampler and kernel, same seed: the same numbers.
        ours = lime_tabular(f, x, mu, sd, n_samples=config.lime_samples[-1], seed=config.seed)
        ref = LimeTabularExplainer(X_train, discretize_continuous=False, random_state=config.seed, feature_selection="none")
        e = ref.explain_instance(x, proba, labels=(label,), num_features=13, num_samples=config.lime_samples[-1])
        lime_diff.append(max(np.abs(_lime_weights(e, label, 13) - ours.coef).max(), abs(e.intercept[label] - ours.intercept)))
        out["lime"].append(ours.coef * (x - mu) / sd)                             # weight x the row's standardised value: a contribution
        # Instability: the same explanation at different seeds, few and many perturbations.
        for n in config.lime_samples:
            coefs = [lime_tabular(f, x, mu, sd, n_samples=n, seed=s).coef for s in range(config.lime_seeds)]
            rho[n].append(np.mean([spearmanr(coefs[i], coefs[j])[0] for i in range(len(coefs)) for j in range(i)]))
    exact = np.array(out["exact"])
    m["wine_mlp_test_accuracy"] = float((proba(X_test).argmax(1) == data.y_test.numpy()).mean())
    m["exact_shapley_efficiency_gap"] = float(max(gaps))
    m["kernel_shap_all_coalitions_max_abs_diff_exact"] = float(max(full_ours))
    m["shap_kernel_explainer_max_abs_diff_exact"] = float(max(full_shap))
    for key in ("kernel_err", "shap_err"):
        for b in config.kernel_budgets:
            m[f"{'kernel_shap' if key == 'kernel_err' else 'shap_package'}_error_{b}"] = float(np.mean(out[key][b]))
    lo, hi = config.kernel_budgets[0], config.kernel_budgets[-1]
    m["kernel_shap_error_shrink"] = m[f"kernel_shap_error_{lo}"] / max(m[f"kernel_shap_error_{hi}"], 1e-15)
    m["kernel_shap_error_over_shap_package"] = m[f"kernel_shap_error_{hi}"] / max(m[f"shap_package_error_{hi}"], 1e-15)
    m["lime_tabular_max_abs_diff_lime_package"] = float(max(lime_diff))
    few, many = config.lime_samples
    m[f"lime_seed_rank_corr_{few}"], m[f"lime_seed_rank_corr_{many}"] = float(np.mean(rho[few])), float(np.mean(rho[many]))
    m["lime_seed_rank_corr_gain"] = m[f"lime_seed_rank_corr_{many}"] - m[f"lime_seed_rank_corr_{few}"]
    # LIME's contributions are in its local model's units, SHAP's in probability: compare their rankings only.
    m["lime_vs_shapley_rank_corr"] = float(np.mean([spearmanr(np.abs(a), np.abs(b))[0] for a, b in zip(out["lime"], exact)]))
    return out


def _image_methods(config: ShapLimeConfig, data, pixels: np.ndarray, fill: float) -> dict:
    """Every attribution method as (model, x (N, 28, 28), target (N,)) -> (N, 28, 28), all on the logit."""
    sigma = config.noise_level * float(data.X_train.max() - data.X_train.min())
    rng = np.random.default_rng(config.seed)
    baselines = data.X_train[torch.as_tensor(rng.choice(len(data.X_train), 50, replace=False))]
    segments = [superpixels(p, config.superpixels) for p in pixels]

    def per_image(explain):
        return lambda model, x, t: torch.stack([torch.as_tensor(explain(model, x[i], int(t[i]), segments[i]), dtype=x.dtype) for i in range(len(x))])

    def logit(model, c):
        def f(images):
            with torch.no_grad():
                return model(torch.as_tensor(images, dtype=torch.float32))[:, c].double().numpy()
        return f

    def lime_pixels(model, x, c, seg):
        e = lime_image(logit(model, c), x.numpy(), seg, n_samples=config.image_samples, seed=config.seed, fill=fill)
        return spread(e.coef, seg)

    def shap_pixels(model, x, c, seg):
        phi = superpixel_shap(logit(model, c), x.numpy(), seg, fill, n_samples=config.image_samples, rng=np.random.default_rng(config.seed))
        return spread(phi, seg)

    return {
        "saliency": saliency,
        "gradient_x_input": gradient_x_input,
        "integrated_gradients": lambda mdl, x, t: integrated_gradients(mdl, x, t, baseline=fill, steps=config.ig_steps),
        "smoothgrad": lambda mdl, x, t: smoothgrad(mdl, x, t, samples=config.noise_samples, sigma=sigma,
                                                   generator=torch.Generator().manual_seed(config.seed)),
        "gradient_shap": lambda mdl, x, t: gradient_shap(mdl, x, t, baselines, samples=config.noise_samples, seed=config.seed,
                                                         generator=torch.Generator().manual_seed(config.seed)),
        "lime": per_image(lime_pixels),
        "kernel_shap": per_image(shap_pixels),
        "_segments": segments, "_sigma": sigma, "_baselines": baselines,
    }


def _captum_diffs(net, x: torch.Tensor, t: torch.Tensor, methods: dict, config: ShapLimeConfig, fill: float) -> dict[str, float]:
    """Each gradient method against captum's, with the same baseline, steps, noise and seeds."""
    import warnings

    from captum.attr import GradientShap, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
        torch.manual_seed(config.seed)
        sg = NoiseTunnel(Saliency(net)).attribute(x, nt_type="smoothgrad", nt_samples=config.noise_samples, stdevs=methods["_sigma"], target=t)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        gs = GradientShap(net).attribute(x, methods["_baselines"], n_samples=config.noise_samples, stdevs=0.0, target=t)
        refs = {"saliency": Saliency(net).attribute(x, target=t), "gradient_x_input": InputXGradient(net).attribute(x, target=t),
                "integrated_gradients": IntegratedGradients(net).attribute(x, baselines=fill, target=t, n_steps=config.ig_steps),
                "smoothgrad": sg, "gradient_shap": gs}
    return {k: float((methods[k](net, x, t) - ref).abs().max().detach()) for k, ref in refs.items()}


def _images(config: ShapLimeConfig, m: dict, tracker: Tracker) -> dict:
    from lime.lime_image import LimeImageExplainer

    data = classification_tensors("mnist5k", seed=config.seed)
    seed_everything(config.seed)
    net, family, kwargs = small_cnn("lenet5", data.num_classes)
    fitted = fit_classifier(net, data, torch.optim.AdamW(net.parameters(), lr=3e-3), schedule=one_cycle(3e-3), epochs=config.cnn_epochs,
                            config=config, tracker=tracker, prefix="lenet5")
    m["cnn_test_accuracy"] = fitted.test_accuracy
    save_trained(tracker.run_dir / "model", net, data, name="lenet5-mnist5k", family=family, kwargs=kwargs,
                 source={"node": "p4.interpret.shap_lime", "run_dir": str(tracker.run_dir), "test_accuracy": fitted.test_accuracy})
    net = net.cpu().eval()
    examples = tracker.run_dir / "examples"                                       # raw test digits for `dlr explain --input`
    examples.mkdir(exist_ok=True)
    for i in range(3):
        with atomic_path(examples / f"digit_{i}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, (data.X_test[i] * data.std + data.mean).numpy())
    x = data.X_test[: config.images]                                            # (N, 28, 28), standardised
    with torch.no_grad():
        t = net(x).argmax(1)
    fill = float((0.0 - data.mean) / data.std)                                   # a black pixel, standardised
    pixels = (x * data.std + data.mean).numpy() / 255.0                          # (N, 28, 28) in [0, 1] for SLIC
    methods = _image_methods(config, data, pixels, fill)
    names = [k for k in methods if not k.startswith("_")]
    attributions = {k: methods[k](net, x, t).detach() for k in names}

    for k, v in _captum_diffs(net, x, t, methods, config, fill).items():
        m[f"{k}_max_abs_diff_captum"] = v
    ig = attributions["integrated_gradients"]
    gap = completeness_gap(net, x, t, ig, baseline=fill).abs()
    with torch.no_grad():
        delta = (net(x).gather(1, t[:, None]) - net(torch.full_like(x, fill)).gather(1, t[:, None]))[:, 0].abs()
    m["ig_completeness_relative_gap"] = float(gap.mean() / delta.mean())
    # LIME on images against the lime package (same superpixels, fill, seed and kernel) on the first digit.
    seg = methods["_segments"][0]
    ours = lime_image(lambda ims: net(torch.as_tensor(ims, dtype=torch.float32))[:, int(t[0])].detach().double().numpy(),
                      x[0].numpy(), seg, n_samples=config.image_samples, seed=config.seed, fill=fill)
    with contextlib.redirect_stderr(io.StringIO()):                              # lime 0.2's progress bar cannot be switched off
        ref = LimeImageExplainer(kernel_width=0.25, feature_selection="none", random_state=config.seed).explain_instance(
            x[0].double().numpy(), lambda ims: net(torch.as_tensor(ims[..., 0], dtype=torch.float32)).detach().double().numpy(),
            labels=(int(t[0]),), top_labels=None, hide_color=fill, num_features=int(seg.max()) + 1, num_samples=config.image_samples,
            segmentation_fn=lambda _: seg, random_seed=config.seed, batch_size=config.image_samples)
    m["lime_image_max_abs_diff_lime_package"] = float(np.abs(_lime_weights(ref, int(t[0]), int(seg.max()) + 1) - ours.coef).max())

    # Faithfulness: deletion / insertion against random pixel orders.
    rng = np.random.default_rng(config.seed)
    prob = lambda batch, c: torch.softmax(net(batch), -1)[:, c]                     # noqa: E731
    # Two yardsticks: random orders, and the input's own brightness (an "explanation" that knows nothing of the model).
    curves = {k: ([], []) for k in [*names, "brightness", "random"]}
    for i in range(len(x)):
        c = int(t[i])
        orders = {k: [pixel_order(attributions[k][i].numpy(), rng)] for k in names}
        orders["brightness"] = [pixel_order(x[i].numpy(), rng)]
        orders["random"] = [rng.permutation(x[i].numel()) for _ in range(config.random_orders)]
        for k, os_ in orders.items():
            for o in os_:
                d, ins = deletion_insertion(lambda b: prob(b, c), x[i], o, fill)
                curves[k][0].append(d)
                curves[k][1].append(ins)
    for k, (d, ins) in curves.items():
        m[f"deletion_auc_{k}"] = float(np.mean([auc(c) for c in d]))
        m[f"insertion_auc_{k}"] = float(np.mean([auc(c) for c in ins]))
    for k in names:
        m[f"{k}_deletion_gain"] = m["deletion_auc_random"] - m[f"deletion_auc_{k}"]
        m[f"{k}_insertion_gain"] = m[f"insertion_auc_{k}"] - m["insertion_auc_random"]

    # Sanity check: cascading randomisation of the weights, top layer first.
    layers, rand = randomisation_test(net, {k: methods[k] for k in names}, x, t, seed=config.seed)
    for k in names:
        m[f"{k}_randomised_rank_corr"] = rand[k][-1]
    # Against the brightness order (an "explanation" that ignores the model): does the method add anything?
    for k in names:
        m[f"{k}_deletion_gain_over_brightness"] = m["deletion_auc_brightness"] - m[f"deletion_auc_{k}"]
    m["min_deletion_gain"] = min(m[f"{k}_deletion_gain"] for k in names)
    m["min_insertion_gain"] = min(m[f"{k}_insertion_gain"] for k in names)
    # Methods that multiply by (x - baseline) are zero wherever the digit is black, trained or not.
    m["ig_minus_saliency_randomised_rank_corr"] = m["integrated_gradients_randomised_rank_corr"] - m["saliency_randomised_rank_corr"]
    return {"x": x, "t": t, "attributions": attributions, "curves": curves, "layers": layers, "randomisation": rand,
            "segments": methods["_segments"]}


def run_shap_lime(config: ShapLimeConfig, tracker: Tracker) -> Result:
    m: dict[str, float] = {}
    tab = _tabular(config, m, tracker)
    img = _images(config, m, tracker)
    names = list(img["attributions"])
    failed = [k for k in names if m[f"{k}_randomised_rank_corr"] > RANDOMISATION_PASS]
    m["randomisation_failures"] = float(len(failed))
    plots = {"shapley_convergence": tracker.log_figure(_tabular_figure(tab, m, config), "shapley_convergence"),
             "attributions": tracker.log_figure(_attribution_figure(img, names), "attributions"),
             "faithfulness": tracker.log_figure(_faithfulness_figure(img, names, m), "faithfulness")}
    best = max(names, key=lambda k: m[f"{k}_insertion_gain"] + m[f"{k}_deletion_gain"])
    return Result(metrics=m, artifacts={**{k: str(v) for k, v in plots.items()}, "model": str(tracker.run_dir / "model")},
                  notes=f"KernelSHAP error {m[f'kernel_shap_error_{config.kernel_budgets[0]}']:.4f} -> {m[f'kernel_shap_error_{config.kernel_budgets[-1]}']:.5f} "
                        f"from {config.kernel_budgets[0]} to {config.kernel_budgets[-1]} coalitions; most faithful on MNIST: {best}; "
                        f"fail the randomisation check (rank corr > {RANDOMISATION_PASS}): {', '.join(failed) or 'none'}")


# Adebayo et al.'s check fails when a fully randomised network's attributions still rank pixels like the
# trained one's: a Spearman correlation above this.
RANDOMISATION_PASS = 0.5


def _tabular_figure(tab: dict, m: dict, config: ShapLimeConfig) -> plt.Figure:
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    b = np.array(config.kernel_budgets)
    for key, label, colour in (("kernel_err", "ours (KernelSHAP)", "tab:blue"), ("shap_err", "shap.KernelExplainer", "tab:orange")):
        errs = np.array([tab[key][k] for k in config.kernel_budgets])          # (budgets, rows * repeats)
        axes[0].plot(b, errs.mean(1), marker="o", color=colour, label=label)
        axes[0].fill_between(b, np.percentile(errs, 10, axis=1), np.percentile(errs, 90, axis=1), color=colour, alpha=0.2)
    axes[0].set(xscale="log", yscale="log", xlabel="coalitions sampled", ylabel="max |phi - exact Shapley|")
    axes[0].set_title(f"KernelSHAP converges to the exact values (wine, 13 features, 2^13 coalitions)\n"
                      f"all coalitions: ours {m['kernel_shap_all_coalitions_max_abs_diff_exact']:.1e}, "
                      f"shap {m['shap_kernel_explainer_max_abs_diff_exact']:.1e} from exact; band = 10-90%", fontsize=9)
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3, which="both")
    names = tab["names"]
    y = np.arange(len(names))[::-1]
    axes[1].barh(y + 0.2, tab["exact"][0], height=0.4, label="exact Shapley (probability)", color="tab:blue")
    lime0 = tab["lime"][0]
    axes[1].barh(y - 0.2, lime0 / np.abs(lime0).max() * np.abs(tab["exact"][0]).max(), height=0.4, label="LIME weight x standardised value (scaled)", color="tab:green")
    axes[1].set_yticks(y, names, fontsize=7)
    axes[1].axvline(0, color="k", lw=0.6)
    axes[1].set_title(f"one wine row: Shapley values vs LIME's weights\nrank agreement over rows {m['lime_vs_shapley_rank_corr']:.2f}", fontsize=9)
    axes[1].legend(fontsize=8)
    few, many = config.lime_samples
    axes[2].bar([f"{few} samples", f"{many} samples"], [m[f"lime_seed_rank_corr_{few}"], m[f"lime_seed_rank_corr_{many}"]], color="tab:green")
    for i, v in enumerate([m[f"lime_seed_rank_corr_{few}"], m[f"lime_seed_rank_corr_{many}"]]):
        axes[2].text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=9)
    axes[2].set_ylim(0, 1.05)
    axes[2].set_title(f"LIME's instability: rank correlation of one row's weights\nbetween {config.lime_seeds} seeds", fontsize=9)
    fig.tight_layout()
    return fig


def _attribution_figure(img: dict, names: list[str]) -> plt.Figure:
    show = min(4, len(img["x"]))
    fig, axes = plt.subplots(show, len(names) + 1, figsize=(1.9 * (len(names) + 1), 2.0 * show), squeeze=False)
    for r in range(show):
        axes[r, 0].imshow(img["x"][r], cmap="gray")
        axes[r, 0].set_title(f"predicted {int(img['t'][r])}", fontsize=8)
        for c, k in enumerate(names, start=1):
            a = img["attributions"][k][r].numpy()
            lim = np.abs(a).max() or 1.0
            axes[r, c].imshow(a, cmap="bwr", vmin=-lim, vmax=lim)
            if r == 0:
                axes[r, c].set_title(k.replace("_", " "), fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("attributions of LeNet-5's predicted-class logit (red: raises it, blue: lowers it)", fontsize=9)
    fig.tight_layout()
    return fig


def _faithfulness_figure(img: dict, names: list[str], m: dict) -> plt.Figure:
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    frac = np.linspace(0, 1, len(img["curves"]["random"][0][0]))
    for k in [*names, "brightness", "random"]:
        style = {"random": dict(color="k", ls="--"), "brightness": dict(color="grey", ls=":")}.get(k, {})
        axes[0].plot(frac, np.mean(img["curves"][k][0], 0), label=f"{k} ({m[f'deletion_auc_{k}']:.3f})", **style)
        axes[1].plot(frac, np.mean(img["curves"][k][1], 0), label=f"{k} ({m[f'insertion_auc_{k}']:.3f})", **style)
    axes[0].set(xlabel="fraction of pixels deleted (most important first)", ylabel="probability of the predicted class")
    axes[0].set_title("deletion: lower area is more faithful", fontsize=9)
    axes[1].set(xlabel="fraction of pixels inserted", ylabel="probability of the predicted class")
    axes[1].set_title("insertion: higher area is more faithful", fontsize=9)
    for k in names:
        axes[2].plot(range(1, len(img["layers"]) + 1), img["randomisation"][k], marker="o", label=k)
    axes[2].axhline(RANDOMISATION_PASS, color="k", ls=":", lw=0.8)
    axes[2].set_xticks(range(1, len(img["layers"]) + 1), [f"+{n}" for n in img["layers"]], fontsize=7, rotation=30)
    axes[2].set(ylabel="Spearman rho, |attribution| trained vs randomised", ylim=(-0.1, 1.0))
    axes[2].set_title("cascading model randomisation (Adebayo et al. 2018): layers re-initialised from the top", fontsize=9)
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


shap_lime = Experiment(ShapLimeConfig, run_shap_lime)
