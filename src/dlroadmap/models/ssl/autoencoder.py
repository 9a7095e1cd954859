"""Undercomplete autoencoders: learn a k-number code of an image by reconstructing the image from it.

An encoder f maps x (784 pixels) to a code c = f(x) with k << 784 numbers, a decoder g maps it back,
and both are trained to make g(f(x)) close to x (mean squared error here). Nothing but x is used: no
labels. The bottleneck forces the code to keep what most images share.

- Linear (f, g affine, no activation): the best rank-k reconstruction in squared error is the projection
  onto the top-k principal components, and gradient descent on the autoencoder reaches a decoder whose
  columns span exactly that subspace (Baldi & Hornik 1989) - but in any basis: W_dec can be W_pca @ R
  for any invertible k x k matrix R, so its columns are not the components themselves.
- Nonlinear (MLP or convolutional, ReLU): a curved code can beat every k-dimensional plane at small k
  (Hinton & Salakhutdinov 2006, Science 313: 504).
- Denoising (Vincent et al. 2008): trained to map a corrupted x~ back to the clean x, so it must learn
  where digits live rather than copy its input.

All decoders end in a sigmoid except the linear one (PCA's reconstruction is not bounded either).
"""

from __future__ import annotations

import torch
from torch import nn


class Autoencoder(nn.Module):
    """x (N, 1, 28, 28) -> code (N, k) -> reconstruction (N, 1, 28, 28).

    `center` (an image, e.g. the training mean) is subtracted before encoding and added back after
    decoding: the network models x - center. PCA does exactly this; for a linear autoencoder it matters
    for speed, not for the optimum: its biases could learn the mean, but a large mean couples them with
    the weights and gradient descent then crawls along the directions of small variance."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, code: int, image_shape: tuple[int, ...] = (1, 28, 28),
                 center: torch.Tensor | None = None):
        super().__init__()
        self.encoder, self.decoder, self.code, self.image_shape = encoder, decoder, code, image_shape
        self.register_buffer("center", torch.zeros(1, *image_shape) if center is None else center.reshape(1, *image_shape).clone())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x - self.center)

    def decode(self, c: torch.Tensor) -> torch.Tensor:
        return self.decoder(c).view(len(c), *self.image_shape) + self.center

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def linear_autoencoder(code: int, pixels: int = 784, center: torch.Tensor | None = None) -> Autoencoder:
    """784 -> k -> 784, affine maps only: the autoencoder that PCA solves in closed form."""
    # a linear autoencoder's optimum spans the top-k principal subspace, in any basis, @baldi1989linear
    return Autoencoder(nn.Sequential(nn.Flatten(), nn.Linear(pixels, code)), nn.Linear(code, pixels), code, center=center)


def mlp_autoencoder(code: int, hidden: tuple[int, ...] = (512, 128), pixels: int = 784) -> Autoencoder:
    """784 -> hidden... -> k -> reversed(hidden)... -> 784, ReLU between layers, sigmoid on the output
    (a smaller cousin of Hinton & Salakhutdinov's 784-1000-500-250-k)."""
    # a deep nonlinear autoencoder, better than PCA at small codes, @hinton2006reducing
    sizes = [pixels, *hidden]
    enc: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(sizes, sizes[1:]):
        enc += [nn.Linear(a, b), nn.ReLU()]
    enc.append(nn.Linear(sizes[-1], code))                  # the code itself is linear: no ReLU clipping it
    dec: list[nn.Module] = []
    back = [code, *reversed(sizes)]
    for a, b in zip(back, back[1:]):
        dec += [nn.Linear(a, b), nn.ReLU()]
    dec[-1] = nn.Sigmoid()                                   # pixels in [0, 1]
    return Autoencoder(nn.Sequential(*enc), nn.Sequential(*dec), code)


def conv_autoencoder(code: int, width: int = 16) -> Autoencoder:
    """Two stride-2 convolutions (28 -> 14 -> 7) and a linear layer to the code; the decoder mirrors them
    with transposed convolutions. Convolutions share weights across positions: ~10x fewer parameters
    than the MLP's first layer for the same code."""
    w = width
    encoder = nn.Sequential(
        nn.Conv2d(1, w, 3, stride=2, padding=1), nn.ReLU(),                        # (N, w, 14, 14)
        nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),                    # (N, 2w, 7, 7)
        nn.Flatten(), nn.Linear(2 * w * 49, code),                                  # (N, k)
    )
    decoder = nn.Sequential(
        nn.Linear(code, 2 * w * 49), nn.ReLU(), nn.Unflatten(1, (2 * w, 7, 7)),
        nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), nn.ReLU(),           # (N, w, 14, 14)
        nn.ConvTranspose2d(w, 1, 4, stride=2, padding=1), nn.Sigmoid(),            # (N, 1, 28, 28)
    )
    return Autoencoder(encoder, decoder, code)


def reconstruction_errors(model: Autoencoder, images: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    """Per-image mean squared error (N,) of the reconstruction: the anomaly score of an autoencoder
    (an image unlike the training data is reconstructed badly)."""
    model.eval()
    with torch.no_grad():
        return torch.cat([(model(x) - x).square().flatten(1).mean(1) for x in images.split(batch)])
