"""Image augmentations written with tensor ops (no torchvision), for batches of (N, C, H, W) images in [0, 1].

Contrastive learning (SimCLR, MoCo) learns what two random views of one image have in common, so the
views decide what the representation ignores: position and size (random resized crop), slant
(rotation, shear), pen texture (noise) and missing strokes (erasing). Every image in a batch gets its
own random parameters, drawn from the `generator` passed in, so a seeded generator gives the same
views every time. Every function returns a tensor of the input's shape.

Geometric transforms resample the image through one affine map per image: `F.affine_grid` turns a
2x3 matrix theta (output coordinates -> input coordinates, both in [-1, 1]) into a sampling grid and
`F.grid_sample` reads the input there (bilinear, zeros outside: the digits' black background).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _resample(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Read each image at theta (N, 2, 3) @ [x, y, 1] of every output pixel; zeros outside the image."""
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)        # (N, H, W, 2)
    return F.grid_sample(images, grid.to(images.device), mode="bilinear", padding_mode="zeros", align_corners=False)


def random_resized_crop(images: torch.Tensor, generator: torch.Generator | None = None, scale: tuple[float, float] = (0.4, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """A random rectangle covering `scale` of the image's area with aspect ratio in `ratio` (log-uniform),
    placed at random inside the image and stretched back to full size (SimCLR's main augmentation)."""
    n = len(images)
    area = _uniform(n, *scale, generator)
    aspect = torch.exp(_uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator))
    w = torch.sqrt(area * aspect).clamp(max=1.0)            # crop width and height as fractions of the image
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (1 - w) * (2 * torch.rand(n, generator=generator) - 1)   # centre in [-1 + w, 1 - w]: the crop stays inside
    cy = (1 - h) * (2 * torch.rand(n, generator=generator) - 1)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    return _resample(images, theta)


def random_affine(images: torch.Tensor, generator: torch.Generator | None = None, degrees: float = 15.0, translate: float = 0.1,
                  scale: tuple[float, float] = (0.9, 1.1), shear: float = 10.0) -> torch.Tensor:
    """Rotation by up to +-`degrees`, shear by up to +-`shear` degrees, zoom in `scale`, and a shift of up to
    `translate` of the image size."""
    n = len(images)
    angle = torch.deg2rad(_uniform(n, -degrees, degrees, generator))
    sh = torch.tan(torch.deg2rad(_uniform(n, -shear, shear, generator)))
    zoom = _uniform(n, *scale, generator)
    shift = _uniform(2 * n, -2 * translate, 2 * translate, generator).view(n, 2)   # [-1, 1] spans the image: 2x
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Output -> input map: the inverse of "zoom, then shear, then rotate": rotate back, unshear, unzoom.
    a = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)          # R^-1 (N, 2, 2)
    unshear = torch.zeros(n, 2, 2)
    unshear[:, 0, 0], unshear[:, 0, 1], unshear[:, 1, 1] = 1.0, -sh, 1.0
    linear = (unshear @ a) / zoom.view(n, 1, 1)
    theta = torch.cat([linear, shift.unsqueeze(-1)], dim=2)                                      # (N, 2, 3)
    return _resample(images, theta)


def gaussian_noise(images: torch.Tensor, generator: torch.Generator | None = None, std: float = 0.1) -> torch.Tensor:
    """Add N(0, std^2) to every pixel, clipped back to [0, 1]."""
    return (images + std * torch.randn(images.shape, generator=generator).to(images.device)).clamp(0, 1)


def random_erasing(images: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5,
                   scale: tuple[float, float] = (0.02, 0.15), ratio: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """With probability p per image, set a random rectangle covering `scale` of the area to 0
    (Zhong et al. 2017, arXiv:1708.04896)."""
    # random erasing (Algorithm 1), @zhong2020erasing
    n, _, height, width = images.shape
    area = _uniform(n, *scale, generator) * height * width
    aspect = torch.exp(_uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator))
    h = torch.sqrt(area * aspect).round().clamp(1, height)
    w = torch.sqrt(area / aspect).round().clamp(1, width)
    top = (torch.rand(n, generator=generator) * (height - h + 1)).floor()
    left = (torch.rand(n, generator=generator) * (width - w + 1)).floor()
    erase = torch.rand(n, generator=generator) < p
    rows, cols = torch.arange(height).view(1, -1, 1), torch.arange(width).view(1, 1, -1)
    box = ((rows >= top.view(-1, 1, 1)) & (rows < (top + h).view(-1, 1, 1))
           & (cols >= left.view(-1, 1, 1)) & (cols < (left + w).view(-1, 1, 1)) & erase.view(-1, 1, 1))   # (N, H, W)
    return images.masked_fill(box.unsqueeze(1).to(images.device), 0.0)


def contrastive_view(images: torch.Tensor, generator: torch.Generator | None = None, strength: float = 1.0) -> torch.Tensor:
    """One random view for contrastive learning on digits: crop, then affine, then noise, then erasing.
    `strength` scales every parameter (0 gives the image back, up to resampling)."""
    s = strength
    x = random_resized_crop(images, generator, scale=(1 - 0.6 * s, 1.0))
    x = random_affine(x, generator, degrees=15 * s, translate=0.1 * s, scale=(1 - 0.1 * s, 1 + 0.1 * s), shear=10 * s)
    x = gaussian_noise(x, generator, std=0.1 * s)
    return random_erasing(x, generator, p=0.5 * s)


def jitter(image: torch.Tensor, generator: torch.Generator | None = None, max_shift: int = 2, std: float = 0.05) -> torch.Tensor:
    """One image (..., H, W), any scale (standardised too: nothing is clipped): shifted by up to `max_shift` pixels
    (wrapping round) and given N(0, std^2) noise. Cheap enough to run per sample in a streaming pipeline's workers."""
    dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=generator))
    shifted = torch.roll(image, shifts=(dy, dx), dims=(-2, -1))
    return shifted + std * torch.randn(shifted.shape, generator=generator)
