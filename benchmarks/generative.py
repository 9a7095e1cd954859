"""Generative models side by side: the VAE, DCGAN and diffusion nodes run through the runner, and for
each sampler (VAE, DCGAN, DDPM over all T steps, DDIM in 50): FLD, classifier score and class coverage
(judged by our LeNet-5, evaluate/generative.py), training seconds, samples per second and parameter
count, beside the floor (real digits) and the ceiling (Gaussian noise). FLD depends on the number of
samples, so each row says its n: DDPM is slow enough that it is judged on fewer images, with DDIM's FLD
on the same images' count beside it (pair_fld_ddim). The three models' sample grids are saved side by
side as results/generative_samples.png.

    python benchmarks/generative.py            # quick presets on the embedded MNIST-5k
    python benchmarks/generative.py --full     # full presets on full MNIST (DLR_DATA_DIR)
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

os.environ.setdefault("DLR_PROGRESS", "0")

from dlroadmap import registry  # noqa: E402
from dlroadmap.runner import run_id  # noqa: E402

from common import RESULTS, save  # noqa: E402

# row name -> (node, then the metric names for FLD, score, digits, max/min, seconds, samples/s, parameters, and the config key of n)
ROWS = {
    "VAE": ("p3.gen.vae", "fld_vae", "classifier_score_vae", "vae_classes_present", "vae_max_min_class_ratio", "vae_train_seconds",
            "vae_samples_per_second", ("vae_parameters",), "samples"),
    "DCGAN": ("p3.gen.gan", "fld_gan", "classifier_score_gan", "gan_classes_present", "gan_max_min_class_ratio", "gan_train_seconds",
              "gan_samples_per_second", ("generator_parameters", "discriminator_parameters"), "samples"),
    "DDPM": ("p4.research.diffusion", "pair_fld_ddpm", "classifier_score_ddpm", "ddpm_classes_present", "ddpm_max_min_class_ratio",
             "diffusion_train_seconds", "ddpm_samples_per_second", ("unet_parameters",), "ddpm_samples"),
    "DDIM": ("p4.research.diffusion", "fld_ddim", "classifier_score_ddim", "ddim_classes_present", "ddim_max_min_class_ratio",
             "diffusion_train_seconds", "ddim_samples_per_second", ("unet_parameters",), "samples"),
}


def side_by_side(out: Path, nodes: list[str], path: Path) -> None:
    """The nodes' 10 x 10 sample grids (plots/samples.png) in one row."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(nodes), figsize=(4 * len(nodes), 4.4))
    for ax, node in zip(axes, nodes):
        ax.imshow(plt.imread(out / node / "plots" / "samples.png"))
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="full presets (full MNIST from DLR_DATA_DIR) instead of quick")
    args = ap.parse_args()
    roadmap = registry.load()
    rows, bounds, runs = [], {}, {}
    with tempfile.TemporaryDirectory() as out:
        for name, (node_id, fld, cs, present, ratio, seconds, per_s, params, n_key) in ROWS.items():
            if node_id not in runs:
                runs[node_id] = run_id(roadmap.get(node_id), out, quick=not args.full, track=None)
            result = runs[node_id]
            m = result.metrics
            rows.append({"model": name, "node": node_id, "fld": m[fld], "fld_samples": result.config[n_key], "classifier_score": m[cs],
                         "classes_present": m[present],
                         "max_min_class_ratio": m[ratio] if math.isfinite(m[ratio]) else None,   # None: a digit never drawn
                         "train_seconds": m[seconds], "samples_per_second": m[per_s], "parameters": sum(m[p] for p in params)})
            if name == "DDPM":
                rows[-1]["pair_fld_ddim"] = m["pair_fld_ddim"]
            if node_id == "p3.gen.vae":
                bounds = {"real_train_digits_fld": m["fld_real_train"], "gaussian_noise_fld": m["fld_gaussian_noise"],
                          "blurred_digits_fld": m["fld_blurred"], "judge_test_accuracy": m["judge_test_accuracy"]}
            r = rows[-1]
            print(f"{name:6s} FLD {r['fld']:7.1f} (n={r['fld_samples']})  score {r['classifier_score']:5.2f}  digits {r['classes_present']:.0f}  "
                  f"max/min {r['max_min_class_ratio'] or float('inf'):5.2f}  train {r['train_seconds']:6.1f} s  {r['samples_per_second']:8.1f} samples/s  "
                  f"{r['parameters'] / 1e6:.2f}M params", flush=True)
        figure = RESULTS / ("generative_samples_full.png" if args.full else "generative_samples.png")
        side_by_side(Path(out), list(runs), figure)
    print(f"floor/ceiling (n={rows[0]['fld_samples']}): real digits {bounds['real_train_digits_fld']:.1f}, "
          f"Gaussian noise {bounds['gaussian_noise_fld']:.0f}, blurred {bounds['blurred_digits_fld']:.0f}; samples side by side: {figure}")
    save("generative_full" if args.full else "generative", {"mode": "full" if args.full else "quick", "rows": rows, "bounds": bounds,
                                                            "samples_figure": figure.name,
                                                            "note": "FLD = Fréchet distance on our LeNet-5's features, not Inception FID; "
                                                                    "comparable only at equal fld_samples"})


if __name__ == "__main__":
    main()
