"""Phase 4, Research Topics: p4.research.multimodal.

  CLIP on MNIST digits with captions: an image encoder (a small CNN, and a small ViT, both ours) and a
  caption transformer trained with symmetric InfoNCE on images paired with captions drawn from eight
  templates; then classification with no classifier trained: each test digit gets the class whose
  caption is nearest, asked in five templates held out of training, one at a time and ensembled (the
  CLIP paper's prompt ensembling); image->text and text->image recall@1/5; and a linear probe on the
  same image features, the supervised reference.
"""

from __future__ import annotations

import time
from typing import ClassVar, Literal

import matplotlib.pyplot as plt
import torch
from pydantic import Field

from dlroadmap.data import TensorLoader
from dlroadmap.data.captions import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, WordTokenizer, caption, caption_table
from dlroadmap.data.prepare import image_pixels
from dlroadmap.evaluate.probe import linear_probe_accuracy
from dlroadmap.experiments.base import Experiment, ExperimentConfig, Result
from dlroadmap.models.multimodal.clip import CLIP, TextEncoder, ViTEncoder, class_embeddings, clip_loss
from dlroadmap.models.ssl.contrastive import ConvEncoder
from dlroadmap.train import Tracker, Trainer, seed_everything

CAPTION_LENGTH = 10     # <start> + at most 8 words + <end>


class MultimodalConfig(ExperimentConfig):
    dataset: Literal["mnist5k", "mnist"] = Field("mnist", description="mnist5k is embedded; mnist needs DLR_DATA_DIR or a download")
    encoders: list[Literal["cnn", "vit"]] = Field(["cnn", "vit"], min_length=1, description="image encoders, each trained as its own CLIP")
    width: int = Field(64, ge=8, le=1024, description="width of the text transformer, the ViT and the CNN's feature")
    embed_dim: int = Field(64, ge=2, le=1024, description="E, the shared embedding")
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(256, ge=2, le=65536, description="pairs per step: each image's negatives are the other captions")
    lr: float = Field(2e-3, gt=0, le=1, description="peak of the one-cycle schedule (AdamW)")
    weight_decay: float = Field(0.1, ge=0, le=10)
    retrieval_images: int = Field(1000, ge=10, le=100_000, description="test images in the retrieval gallery")
    flamingo: bool = Field(True, description="also train the Flamingo-style model on the first encoder's frozen features")
    lm_steps: int = Field(3000, ge=1, le=1_000_000, description="steps of the caption language model (text only), then frozen")
    flamingo_steps: int = Field(3000, ge=1, le=1_000_000, description="steps of the resampler and gated cross-attention layers")
    flamingo_batch: int = Field(32, ge=1, le=65536, description="interleaved sequences per step")
    flamingo_images: int = Field(3, ge=1, le=8, description="captioned images per training sequence")
    flamingo_lr: float = Field(1e-3, gt=0, le=1)
    flamingo_queries: int = Field(1000, ge=10, le=100_000, description="test images asked for a caption at each number of shots")

    QUICK: ClassVar[dict] = {"dataset": "mnist5k", "encoders": ["cnn"], "epochs": 6, "batch_size": 128, "lm_steps": 1000,
                             "flamingo_steps": 600, "flamingo_queries": 400}


def _encoder(kind: str, width: int) -> tuple[torch.nn.Module, int]:
    if kind == "cnn":
        return ConvEncoder(dim=width, width=16), width        # p3.ssl.contrastive's encoder
    return ViTEncoder(28, patch=7, width=width, layers=2, heads=4), width


def _train_clip(kind: str, data, tokenizer: WordTokenizer, config: MultimodalConfig, tracker: Tracker) -> tuple[CLIP, list, float]:
    seed_everything(config.seed)
    image_encoder, dim = _encoder(kind, config.width)
    model = CLIP(image_encoder, dim, TextEncoder(len(tokenizer), CAPTION_LENGTH, config.width), config.embed_dim)
    ids, ends = caption_table(tokenizer, TRAIN_TEMPLATES, CAPTION_LENGTH)       # (T, 10, L), (T, 10)

    def step(model, batch):
        x, y = batch
        t = torch.randint(len(TRAIN_TEMPLATES), y.shape, device=y.device)     # a fresh template for each pair, each step
        return clip_loss(model(x, ids.to(y.device)[t, y], ends.to(y.device)[t, y])), None, None

    loader = TensorLoader(data.X_train, data.y_train, batch_size=config.batch_size, shuffle=True, seed=config.seed, drop_last=True)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.epochs * len(loader), pct_start=0.1)
    trainer = Trainer(model, opt, step=step, max_epochs=config.epochs, scheduler=sched, scheduler_interval="step", device=config.device,
                      precision=config.precision, seed=config.seed, tracker=tracker, log_prefix=f"clip/{kind}", description=f"CLIP ({kind})")
    t0 = time.perf_counter()
    history = trainer.fit(loader)
    return model.cpu().eval(), history, time.perf_counter() - t0


@torch.no_grad()
def _zero_shot(model: CLIP, tokenizer: WordTokenizer, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy of the nearest caption, per held-out template and with all of them ensembled; the training
    templates ensembled too (how much is lost by asking in new words)."""
    img = model.encode_image(images)                                         # (N, E)
    out: dict[str, float] = {}
    held_ids, held_ends = caption_table(tokenizer, HELD_OUT_TEMPLATES, CAPTION_LENGTH)
    for i, template in enumerate(HELD_OUT_TEMPLATES):
        w = class_embeddings(model, held_ids[i:i + 1], held_ends[i:i + 1])   # (10, E)
        out[template] = float(((img @ w.T).argmax(1) == labels).float().mean())
    out["ensemble"] = float(((img @ class_embeddings(model, held_ids, held_ends).T).argmax(1) == labels).float().mean())
    train_ids, train_ends = caption_table(tokenizer, TRAIN_TEMPLATES, CAPTION_LENGTH)
    out["training templates"] = float(((img @ class_embeddings(model, train_ids, train_ends).T).argmax(1) == labels).float().mean())
    return out


@torch.no_grad()
def _retrieval(model: CLIP, tokenizer: WordTokenizer, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """MNIST captions name only the digit, so a hit is any caption naming the image's digit, any image of the
    caption's digit. Image -> text: each held-out template's 10 captions ranked for each image (recall@5 is
    then a top-5 accuracy), averaged over templates. Text -> image: each held-out caption ranks the
    gallery; recall@k (a right image among the first k) and R-precision (the share of right images among
    the first R, R = how many images of that digit the gallery holds)."""
    ids, ends = caption_table(tokenizer, HELD_OUT_TEMPLATES, CAPTION_LENGTH)
    T, C, L = ids.shape
    txt = model.encode_text(ids.reshape(T * C, L), ends.reshape(T * C))     # (T*C, E): caption t*C + c names digit c
    sim = model.encode_image(images) @ txt.T                                 # (N, T*C)
    by_template = sim.view(len(images), T, C)                                # (N, T, C)
    txt_labels = torch.arange(C).repeat(T)
    order = sim.T.argsort(dim=1, descending=True)                            # (T*C, N): gallery ranked for each caption
    right = labels[order] == txt_labels[:, None]                             # (T*C, N)
    counts = torch.bincount(labels, minlength=C)[txt_labels]                 # R for each caption
    out = {"t2i_r_precision": float(torch.stack([right[i, :r].float().mean() for i, r in enumerate(counts.tolist())]).mean())}
    for k in (1, 5):
        hit = (by_template.topk(k, dim=2).indices == labels[:, None, None]).any(2)   # (N, T)
        out[f"i2t_recall@{k}"] = float(hit.float().mean())
        out[f"t2i_recall@{k}"] = float(right[:, :k].any(1).float().mean())
    return out


def run_multimodal(config: MultimodalConfig, tracker: Tracker) -> Result:
    data = image_pixels(config.dataset, seed=config.seed)
    tokenizer = WordTokenizer([caption(t, c) for t in TRAIN_TEMPLATES for c in range(10)])
    m: dict[str, float] = {}
    results, histories, clips = {}, [], {}
    gallery = slice(0, config.retrieval_images)
    for kind in config.encoders:
        model, history, seconds = _train_clip(kind, data, tokenizer, config, tracker)
        histories += history
        zs = _zero_shot(model, tokenizer, data.X_test, data.y_test)
        single = [zs[t] for t in HELD_OUT_TEMPLATES]
        m |= {f"{kind}_zero_shot_ensemble_accuracy": zs["ensemble"], f"{kind}_zero_shot_best_single_accuracy": max(single),
              f"{kind}_zero_shot_mean_single_accuracy": sum(single) / len(single), f"{kind}_zero_shot_worst_single_accuracy": min(single),
              f"{kind}_ensemble_minus_best_single": zs["ensemble"] - max(single),
              f"{kind}_ensemble_minus_mean_single": zs["ensemble"] - sum(single) / len(single),
              f"{kind}_training_templates_accuracy": zs["training templates"],
              f"{kind}_temperature": 1 / model.scale().item(), f"{kind}_train_seconds": seconds}
        m |= {f"{kind}_{k}": v for k, v in _retrieval(model, tokenizer, data.X_test[gallery], data.y_test[gallery]).items()}
        with torch.no_grad():        # the supervised reference: logistic regression on the same (frozen) image features
            m[f"{kind}_linear_probe_accuracy"] = linear_probe_accuracy(model.visual(data.X_train), data.y_train,
                                                                       model.visual(data.X_test), data.y_test)
        results[kind] = zs
        clips[kind] = model
    fig = _figure(results, m, config)
    plot = tracker.log_figure(fig, "clip_zero_shot")
    artifacts = {"clip_zero_shot": str(plot)}
    if config.flamingo:
        fig = _flamingo(clips[config.encoders[0]], config.encoders[0], data, config, tracker, m)
        artifacts["flamingo_few_shot"] = str(tracker.log_figure(fig, "flamingo_few_shot"))
    best = max(config.encoders, key=lambda k: m[f"{k}_zero_shot_ensemble_accuracy"])
    notes = "; ".join(f"CLIP {k}: zero-shot {m[f'{k}_zero_shot_ensemble_accuracy']:.3f} ensembled over held-out templates "
                      f"({m[f'{k}_zero_shot_worst_single_accuracy']:.3f}-{m[f'{k}_zero_shot_best_single_accuracy']:.3f} one at a time), "
                      f"linear probe {m[f'{k}_linear_probe_accuracy']:.3f}" for k in config.encoders)
    m["zero_shot_accuracy"] = m[f"{best}_zero_shot_ensemble_accuracy"]
    if config.flamingo:
        notes += (f"; Flamingo on the frozen {config.encoders[0]} and a frozen caption LM: {m['flamingo_0shot_accuracy']:.3f} at 0 shots, "
                  f"{m['flamingo_2shot_accuracy']:.3f} at 2 (the digit right in either style: {m['flamingo_0shot_digit_accuracy']:.3f})")
    return Result(metrics=m, artifacts=artifacts, history=histories, notes=notes)


def _visual_tokens(encoder: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """The frozen image encoder's grid of features, (N, S, D): Flamingo's resampler reads all of them."""
    if isinstance(encoder, ConvEncoder):
        conv = encoder.net[:9]                                   # the three conv blocks: (N, 4w, 4, 4)
        dim = conv[6].out_channels
        return torch.nn.Sequential(conv, torch.nn.Flatten(2), _Transpose()), dim
    return _ViTTokens(encoder), encoder.dim


class _Transpose(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)                                 # (N, D, S) -> (N, S, D)


class _ViTTokens(torch.nn.Module):
    def __init__(self, vit: ViTEncoder):
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit.tokens(x)                                # (N, 1 + patches, width): every token


def _flamingo(clip: CLIP, kind: str, data, config: MultimodalConfig, tracker: Tracker, m: dict) -> plt.Figure:
    """A caption LM trained on text alone, frozen; CLIP's image encoder, frozen; between them a Perceiver
    Resampler and gated cross-attention layers, trained on interleaved sequences of training digits. Then
    test digits captioned after 0, 1 and 2 captioned test digits: the examples show the sequence's style."""
    from dlroadmap.data.captions import InterleavedCaptions
    from dlroadmap.data.loader import SampledBatches
    from dlroadmap.models.multimodal.flamingo import Flamingo, caption_loss
    from dlroadmap.models.sequence.gpt import GPT, GPTConfig
    from dlroadmap.nlp.prompting import bootstrap_ci, paired_bootstrap_ci

    lang, M = InterleavedCaptions(), config.flamingo_images
    X, y = data.X_train, data.y_train

    def sequences(generator: torch.Generator, step: int, images: bool):
        pick = torch.randint(len(y), (config.flamingo_batch, M), generator=generator)
        styles = torch.randint(2, (config.flamingo_batch,), generator=generator)
        ids = lang.captions(y[pick], styles)
        return (ids, pick) if images else (ids,)

    # 1. The language model: the caption language from text alone (it can learn the format and to keep a
    #    sequence's style, never which digit an image shows). Keeping the style is learned suddenly, after
    #    a plateau of 300-900 steps at seeds 0-2 (an induction-like copy), hence the quick preset's 1,000.
    seed_everything(config.seed)
    lm = GPT(GPTConfig(vocab_size=len(lang), block_size=lang.PER_IMAGE * (M + 2), n_layer=2, n_head=2, n_embd=config.width))
    trainer = Trainer(lm, lm.configure_optimizer(1e-3), step=lambda model, b: (model(b[0][:, :-1], b[0][:, 1:])[1], None, None),
                      max_steps=config.lm_steps, device=config.device, seed=config.seed, tracker=tracker, log_prefix="flamingo/lm",
                      description="caption LM")
    t0 = time.perf_counter()
    trainer.fit(SampledBatches(lambda g, s: sequences(g, s, False), config.lm_steps, config.seed))
    m["lm_train_seconds"] = time.perf_counter() - t0
    lm = lm.cpu()

    # 2. Flamingo: only the resampler and the gated layers learn.
    seed_everything(config.seed)
    vision, dim = _visual_tokens(clip.visual)
    model = Flamingo(lm, vision, dim, lang.image, num_latents=8, depth=2, heads=4)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=config.flamingo_lr, weight_decay=0.0, fused=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.flamingo_lr, total_steps=config.flamingo_steps, pct_start=0.1)

    feats = torch.cat([model.visual_features(X[i:i + 1000, None])[:, 0] for i in range(0, len(X), 1000)])   # (N, S, Dv), once

    def step(model, batch):
        ids, pick = batch
        return caption_loss(model(ids[:, :-1], features=feats.to(ids.device)[pick.to(ids.device)]), ids[:, 1:]), None, None

    trainer = Trainer(model, opt, step=step, max_steps=config.flamingo_steps, scheduler=sched, scheduler_interval="step",
                      device=config.device, seed=config.seed, tracker=tracker, log_prefix="flamingo", description="Flamingo")
    t0 = time.perf_counter()
    trainer.fit(SampledBatches(lambda g, s: sequences(g, s, True), config.flamingo_steps, config.seed + 1))
    m["flamingo_train_seconds"] = time.perf_counter() - t0
    model = model.cpu().eval()
    m["flamingo_trainable_parameters"] = float(sum(p.numel() for p in model.trainable_parameters()))
    m["flamingo_gate_attn_mean"] = float(torch.stack([torch.tanh(x.attn_gate.detach()) for x in model.xattn.values()]).abs().mean())

    # 3. Test digits, each asked once at every number of shots, with the same styles and examples.
    g = torch.Generator().manual_seed(config.seed + 7)
    n = min(config.flamingo_queries, len(data.y_test))
    query = torch.randperm(len(data.y_test), generator=g)[:n]
    context = torch.randint(len(data.y_test), (n, 2), generator=g)
    styles = torch.arange(n) % 2                                 # half each way: 0 shots cannot do better than guess
    Xt, yt = data.X_test, data.y_test
    correct = {}
    for k in (0, 1, 2):
        pick = torch.cat([context[:, :k], query[:, None]], 1)    # (n, k + 1): the query last
        ids = lang.captions(yt[pick], styles, query=True)
        with torch.no_grad():
            words = model(ids, Xt[pick])[:, -1].argmax(-1)
            lm_words = lm(ids)[0][:, -1].argmax(-1)
        answer = lang.label_token(yt[query], styles)
        correct[k] = (words == answer).double().numpy()
        m[f"flamingo_{k}shot_accuracy"] = float(correct[k].mean())
        m[f"flamingo_{k}shot_ci_low"], m[f"flamingo_{k}shot_ci_high"] = bootstrap_ci(correct[k], config.seed)
        either = (words == lang.label_token(yt[query], torch.zeros_like(styles))) | (words == lang.label_token(yt[query], torch.ones_like(styles)))
        m[f"flamingo_{k}shot_digit_accuracy"] = float(either.double().mean())
        m[f"lm_only_{k}shot_accuracy"] = float((lm_words == answer).double().mean())
        m[f"lm_only_{k}shot_style_accuracy"] = float((lang.style_of(lm_words) == styles).double().mean())
    m["flamingo_2shot_gain"] = m["flamingo_2shot_accuracy"] - m["flamingo_0shot_accuracy"]
    m["flamingo_2shot_gain_ci_low"] = paired_bootstrap_ci(correct[2], correct[0], config.seed)[0]
    return _flamingo_figure(m, n)


def _flamingo_figure(m: dict, n: int) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    shots = [0, 1, 2]
    acc = [m[f"flamingo_{k}shot_accuracy"] for k in shots]
    err = [[a - m[f"flamingo_{k}shot_ci_low"] for k, a in zip(shots, acc)], [m[f"flamingo_{k}shot_ci_high"] - a for k, a in zip(shots, acc)]]
    ax.bar([k - 0.25 for k in shots], acc, 0.25, yerr=err, capsize=3, label="caption in the sequence's style (95% CI)")
    ax.bar(shots, [m[f"flamingo_{k}shot_digit_accuracy"] for k in shots], 0.25, label="the digit, either style")
    ax.bar([k + 0.25 for k in shots], [m[f"lm_only_{k}shot_accuracy"] for k in shots], 0.25, label="the frozen LM alone (no images)")
    ax.set_xticks(shots, [f"{k} examples" for k in shots])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Flamingo-style captions of {n} test digits after k captioned test digits", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def _figure(results: dict[str, dict[str, float]], m: dict[str, float], config: MultimodalConfig) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * (len(HELD_OUT_TEMPLATES) + 3) * len(results)))
    rows, values, colors = [], [], []
    for kind, zs in results.items():
        for name, acc in zs.items():
            label = name.format(w="<word>", d="<digit>") if "{" in name else name
            rows.append(f"{kind}: {label}")
            values.append(acc)
            colors.append({"ensemble": "tab:green", "training templates": "tab:grey"}.get(name, "tab:blue"))
        rows.append(f"{kind}: linear probe (supervised)")
        values.append(m[f"{kind}_linear_probe_accuracy"])
        colors.append("tab:orange")
    ax.barh(rows[::-1], values[::-1], color=colors[::-1])
    for i, v in enumerate(values[::-1]):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=7)
    ax.set_xlim(0, 1.08)
    ax.set_xlabel(f"test accuracy ({config.dataset})")
    ax.set_title("CLIP zero-shot: held-out caption templates, one at a time and ensembled", fontsize=9)
    fig.tight_layout()
    return fig


multimodal = Experiment(MultimodalConfig, run_multimodal)
