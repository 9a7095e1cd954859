"""Explanations: our implementations against the reference packages, same inputs, same answers, time each.

  KernelSHAP    wine (13 features), an sklearn MLP's class probability, 20 background rows: ours vs
                shap.KernelExplainer at 512 coalitions and with all 8,192 (where both equal the exact values)
  LIME          the same model and row, 5,000 perturbations: ours vs lime's LimeTabularExplainer (same seed:
                the same coefficients); superpixel LIME on one MNIST-5k digit, 1,000 samples, vs LimeImageExplainer
  gradients     a LeNet-5 on 32 digits: integrated gradients (50 steps) and SmoothGrad (50 samples) vs captum

The equality of each pair is checked here too (a fast method that gives another answer is not faster).

    python benchmarks/explain_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import warnings

import numpy as np
import torch

os.environ.setdefault("DLR_PROGRESS", "0")

from dlroadmap.interpret.gradients import integrated_gradients, smoothgrad  # noqa: E402
from dlroadmap.interpret.lime import lime_image, lime_tabular  # noqa: E402
from dlroadmap.interpret.shapley import kernel_shap  # noqa: E402
from dlroadmap.models.vision.lenet import LeNet5  # noqa: E402

from common import median_time, save  # noqa: E402


def tabular():
    from sklearn.datasets import load_wine
    from sklearn.neural_network import MLPClassifier

    X, y = load_wine(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    clf = MLPClassifier((32,), max_iter=2000, random_state=0).fit(X[:140], y[:140])
    return clf, X[:140], X[150]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import shap
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
    from lime.lime_image import LimeImageExplainer
    from lime.lime_tabular import LimeTabularExplainer

    warnings.filterwarnings("ignore")
    clf, train, x = tabular()
    f = lambda Z: clf.predict_proba(Z)[:, 0]                                   # noqa: E731
    bg = train[::7]
    rows = {}

    def pair(name, ours, ref, same):
        t_ours, _ = median_time(ours, args.repeats)
        t_ref, _ = median_time(ref, args.repeats)
        rows[name] = {"ours_s": t_ours, "reference_s": t_ref, "speedup": t_ref / t_ours, "max_abs_diff": same()}
        print(f"{name:32s} ours {t_ours * 1e3:8.1f} ms   reference {t_ref * 1e3:8.1f} ms   x{t_ref / t_ours:5.2f}   diff {rows[name]['max_abs_diff']:.1e}")

    explainer = shap.KernelExplainer(f, bg)
    for n, label in ((512, "kernel_shap_512"), (2 ** 13, "kernel_shap_all_8192")):
        pair(label, lambda n=n: kernel_shap(f, x, bg, n_samples=n),
             lambda n=n: explainer.shap_values(x[None], nsamples=n, l1_reg=False, silent=True),
             (lambda: float(np.abs(kernel_shap(f, x, bg, n_samples=2 ** 13)[0]
                                   - explainer.shap_values(x[None], nsamples=2 ** 13, l1_reg=False, silent=True)[0]).max()))
             if n == 2 ** 13 else (lambda: float("nan")))               # sampled: different draws, compared to exact in the node

    proba = clf.predict_proba
    lte = LimeTabularExplainer(train, discretize_continuous=False, random_state=0, feature_selection="none")

    def lime_ref():
        return lte.explain_instance(x, proba, labels=(1,), num_features=13, num_samples=5000)

    def lime_diff():
        e = LimeTabularExplainer(train, discretize_continuous=False, random_state=0, feature_selection="none").explain_instance(
            x, proba, labels=(1,), num_features=13, num_samples=5000)
        coef = np.zeros(13)
        for i, c in e.local_exp[1]:
            coef[i] = c
        return float(np.abs(coef - lime_tabular(lambda Z: proba(Z)[:, 1], x, train.mean(0), train.std(0), n_samples=5000).coef).max())

    pair("lime_tabular_5000", lambda: lime_tabular(lambda Z: proba(Z)[:, 1], x, train.mean(0), train.std(0), n_samples=5000),
         lime_ref, lime_diff)

    from skimage.segmentation import slic

    from dlroadmap.data import load

    torch.manual_seed(0)
    net = LeNet5(input_size=28, activation="relu", pool="max").eval()
    digits = load("mnist5k").X[:32].reshape(-1, 28, 28).astype(np.float32) / 255.0
    img = digits[0]
    seg = slic(img, n_segments=40, compactness=0.1, channel_axis=None, start_label=0)
    logit = lambda ims: net(torch.as_tensor(ims, dtype=torch.float32)).detach().double().numpy()[:, 3]       # noqa: E731
    def lime_img_ref():
        lie = LimeImageExplainer(kernel_width=0.25, feature_selection="none", random_state=0)     # fresh: the same draws each call
        with contextlib.redirect_stderr(io.StringIO()):
            return lie.explain_instance(img.astype(np.float64), lambda ims: np.stack([logit(ims[..., 0])] * 4, 1), labels=(3,), top_labels=None,
                                        hide_color=0.0, num_features=int(seg.max()) + 1, num_samples=1000, segmentation_fn=lambda _: seg,
                                        random_seed=0, batch_size=1000)

    def lime_img_diff():
        coef = np.zeros(int(seg.max()) + 1)
        for i, c in lime_img_ref().local_exp[3]:
            coef[i] = c
        return float(np.abs(coef - lime_image(logit, img, seg, n_samples=1000, seed=0).coef).max())

    pair("lime_image_1000", lambda: lime_image(logit, img, seg, n_samples=1000, seed=0), lime_img_ref, lime_img_diff)

    xb = torch.as_tensor(digits)
    t = net(xb).argmax(1)
    pair("integrated_gradients_50x32", lambda: integrated_gradients(net, xb, t, steps=50),
         lambda: IntegratedGradients(net).attribute(xb, target=t, n_steps=50),
         lambda: float((integrated_gradients(net, xb, t, steps=50) - IntegratedGradients(net).attribute(xb, target=t, n_steps=50)).abs().max()))

    def sg_ref():
        torch.manual_seed(1)
        return NoiseTunnel(Saliency(net)).attribute(xb, nt_type="smoothgrad", nt_samples=50, stdevs=0.15, target=t)

    pair("smoothgrad_50x32", lambda: smoothgrad(net, xb, t, samples=50, sigma=0.15, generator=torch.Generator().manual_seed(1)), sg_ref,
         lambda: float((smoothgrad(net, xb, t, samples=50, sigma=0.15, generator=torch.Generator().manual_seed(1)) - sg_ref()).abs().max()))
    save("explain_speed", {"repeats": args.repeats, "results": rows})


if __name__ == "__main__":
    main()
