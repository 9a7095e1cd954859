"""Generative models side by side: the VAE and the DCGAN nodes run through the runner, and for each:
FLD, classifier score and class coverage of 10,000 samples (judged by our LeNet-5, evaluate/generative.py),
training seconds, samples per second and parameter count, beside the floor (real digits) and the
ceiling (Gaussian noise). DDPM/DDIM join when p4.research.diffusion is built.

    python benchmarks/generative.py            # quick presets on the embedded MNIST-5k
    python benchmarks/generative.py --full     # full presets on full MNIST (DLR_DATA_DIR)
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("DLR_PROGRESS", "0")

from dlroadmap import registry  # noqa: E402
from dlroadmap.runner import run_id  # noqa: E402

from common import save  # noqa: E402

MODELS = {  # node -> (row name, then the metric names for FLD, score, digits, max/min, seconds, samples/s, parameters)
    "p3.gen.vae": ("VAE", "fld_vae", "classifier_score_vae", "vae_classes_present", "vae_max_min_class_ratio", "vae_train_seconds",
                   "vae_samples_per_second", ("vae_parameters",)),
    "p3.gen.gan": ("DCGAN", "fld_gan", "classifier_score_gan", "gan_classes_present", "gan_max_min_class_ratio", "gan_train_seconds",
                   "gan_samples_per_second", ("generator_parameters", "discriminator_parameters")),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="full presets (full MNIST from DLR_DATA_DIR) instead of quick")
    args = ap.parse_args()
    roadmap = registry.load()
    rows, bounds = [], {}
    with tempfile.TemporaryDirectory() as out:
        for node_id, (name, fld, cs, present, ratio, seconds, per_s, params) in MODELS.items():
            m = run_id(roadmap.get(node_id), out, quick=not args.full, track=None).metrics
            rows.append({"model": name, "node": node_id, "fld": m[fld], "classifier_score": m[cs], "classes_present": m[present],
                         "max_min_class_ratio": m[ratio], "train_seconds": m[seconds], "samples_per_second": m[per_s],
                         "parameters": sum(m[p] for p in params)})
            bounds = {"real_train_digits_fld": m["fld_real_train"], "gaussian_noise_fld": m["fld_gaussian_noise"],
                      "blurred_digits_fld": m["fld_blurred"], "judge_test_accuracy": m["judge_test_accuracy"]}
            r = rows[-1]
            print(f"{name:6s} FLD {r['fld']:7.1f}  score {r['classifier_score']:5.2f}  digits {r['classes_present']:.0f}  "
                  f"max/min {r['max_min_class_ratio']:5.2f}  train {r['train_seconds']:6.1f} s  {r['samples_per_second']:8.0f} samples/s  "
                  f"{r['parameters'] / 1e6:.2f}M params", flush=True)
    print(f"floor/ceiling: real digits {bounds['real_train_digits_fld']:.1f}, Gaussian noise {bounds['gaussian_noise_fld']:.0f}, "
          f"blurred {bounds['blurred_digits_fld']:.0f}")
    save("generative_full" if args.full else "generative", {"mode": "full" if args.full else "quick", "rows": rows, "bounds": bounds,
                                                            "note": "FLD = Fréchet distance on our LeNet-5's features, not Inception FID"})


if __name__ == "__main__":
    main()
