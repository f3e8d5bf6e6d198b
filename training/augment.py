"""Batch augmentation for smear images, done on float tensors so it stays cheap on two CPU cores.

What varies between labs and should not change the answer: orientation (cells have no "up"), a
little framing (scale/shift), stain colour (modelled in optical-density space, where stains mix
linearly, plus hue/saturation/brightness/contrast/gamma), focus (blur) and camera resolution
(down- then up-sampling). Every random draw comes from the ``torch.Generator`` passed in, so a
seeded run is repeatable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _rand(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def dihedral(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random flip and 90-degree rotation per image (the 8 symmetries of the square)."""
    n = x.shape[0]
    k = torch.randint(0, 4, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    out = x.clone()
    for r in range(4):
        for f in (False, True):
            idx = torch.nonzero((k == r) & (flip == f)).flatten()
            if idx.numel() == 0:
                continue
            part = x[idx]
            if f:
                part = part.flip(3)
            if r:
                part = torch.rot90(part, r, (2, 3))
            out[idx] = part
    return out


UNIFORM_ZOOM = (0.85, 1.15)  # the zoom range of the recipes that predate the log-uniform option


def affine(
    x: torch.Tensor, g: torch.Generator, zoom: tuple[float, float] | None = None, shift: float = 0.08,
    angle: float = 20.0, zoom_share: float = 1.0,
) -> torch.Tensor:
    """Random zoom, shift and rotation with reflected borders (smear background continues).

    ``zoom=None`` draws the scale uniformly in UNIFORM_ZOOM (the all4/pbc recipes); a (low, high) range
    draws it log-uniformly, so zooming out by 1/f is as likely as zooming in by f (another
    objective or camera changes how many pixels a cell spans). ``zoom_share`` < 1 gives that range to
    that share of the images only, the rest the uniform one, so the network still sees the training
    data's own cell size (as ``colour_share`` keeps its own colours)."""
    n = x.shape[0]
    s = (
        _rand(g, n, *UNIFORM_ZOOM)
        if zoom is None
        else torch.exp(_rand(g, n, math.log(zoom[0]), math.log(zoom[1])))
    )
    if zoom is not None and zoom_share < 1.0:  # no extra draw otherwise: the seeded recipes stay as they were
        wide = torch.rand(n, generator=g) < zoom_share
        s = torch.where(wide, s, _rand(g, n, *UNIFORM_ZOOM))
    a = _rand(g, n, -angle, angle) * math.pi / 180
    tx, ty = _rand(g, n, -shift, shift), _rand(g, n, -shift, shift)
    theta = torch.stack(
        [
            torch.stack([torch.cos(a) / s, -torch.sin(a) / s, tx], 1),
            torch.stack([torch.sin(a) / s, torch.cos(a) / s, ty], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def stain_jitter(x: torch.Tensor, g: torch.Generator, mix: float = 0.08, gain: float = 0.25) -> torch.Tensor:
    """Perturb stain in optical density: OD' = OD @ (I + noise) * per-channel gain, then back to RGB."""
    n = x.shape[0]
    od = -torch.log(x.clamp(min=1.0 / 255.0))
    m = torch.eye(3).expand(n, 3, 3) + mix * torch.randn(n, 3, 3, generator=g)
    m = m * _rand(g, n * 3, 1 - gain, 1 + gain).view(n, 1, 3)
    od = torch.einsum("nchw,ncd->ndhw", od, m)
    return torch.exp(-od.clamp(min=0.0)).clamp(0, 1)


def white_balance(x: torch.Tensor, g: torch.Generator, tint: float) -> torch.Tensor:
    """Per-channel gains in 1 +- ``tint``: a camera's white balance or a warmer/cooler lamp."""
    return (x * _rand(g, x.shape[0] * 3, 1 - tint, 1 + tint).view(-1, 3, 1, 1)).clamp(0, 1)


def colour_jitter(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Hue rotation (in YIQ), saturation, brightness, contrast and gamma, each drawn per image."""
    n = x.shape[0]
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    from_yiq = torch.linalg.inv(to_yiq)
    hue = _rand(g, n, -0.35, 0.35)
    sat = _rand(g, n, 0.6, 1.4)
    c, s = torch.cos(hue) * sat, torch.sin(hue) * sat
    rot = torch.zeros(n, 3, 3)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = c, -s, s, c
    mat = from_yiq @ rot @ to_yiq  # (n,3,3), applied as out_c = sum_d mat[c,d] * x_d
    x = torch.einsum("ncd,ndhw->nchw", mat, x).clamp(0, 1)
    bright = _rand(g, n, 0.8, 1.2).view(n, 1, 1, 1)
    contrast = _rand(g, n, 0.75, 1.25).view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean) * bright
    gamma = torch.exp(_rand(g, n, -0.25, 0.25)).view(n, 1, 1, 1)
    x = x.clamp(1e-4, 1) ** gamma
    grey = torch.nonzero(torch.rand(n, generator=g) < 0.05).flatten()
    if grey.numel():
        x[grey] = x[grey].mean(1, keepdim=True).expand(-1, 3, -1, -1)
    return x.clamp(0, 1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def focus_and_resolution(x: torch.Tensor, g: torch.Generator, p_blur: float = 0.3, p_res: float = 0.3) -> torch.Tensor:
    """Blur a random subset, and down/up-sample another subset (another camera or objective)."""
    n, _, h, w = x.shape
    out = x.clone()
    blur_idx = torch.nonzero(torch.rand(n, generator=g) < p_blur).flatten()
    if blur_idx.numel():
        sigma = float(_rand(g, 1, 0.4, 1.6))
        out[blur_idx] = gaussian_blur(out[blur_idx], sigma)
    res_idx = torch.nonzero(torch.rand(n, generator=g) < p_res).flatten()
    if res_idx.numel():
        f = float(_rand(g, 1, 0.35, 0.85))
        small = F.interpolate(out[res_idx], size=(max(8, int(h * f)), max(8, int(w * f))), mode="bilinear",
                              antialias=True, align_corners=False)
        out[res_idx] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    noise_sd = float(_rand(g, 1, 0.0, 0.02))
    return (out + noise_sd * torch.randn(out.shape, generator=g)).clamp(0, 1)


def _colour(x: torch.Tensor, g: torch.Generator, tint: float) -> torch.Tensor:
    x = colour_jitter(stain_jitter(x, g), g)
    return white_balance(x, g, tint) if tint > 0 else x


def augment_batch(x: torch.Tensor, g: torch.Generator, colour_share: float = 1.0, p_blur: float = 0.3,
                  p_res: float = 0.3, zoom: tuple[float, float] | None = None, tint: float = 0.0,
                  zoom_share: float = 1.0) -> torch.Tensor:
    """The training augmentation for a float batch in [0, 1], NCHW.

    Geometry applies to every image; stain and colour jitter to a ``colour_share`` of them, so the
    network also sees the images' own colours (which carry real signal: eosinophil granules, blast
    chromatin) while still learning not to depend on one lab's stain. ``zoom``, ``zoom_share``: see ``affine``.
    ``tint`` > 0 adds white-balance gains to the jittered share (no draw at 0, so the seeded stream of
    the recipes without it is unchanged).
    """
    x = dihedral(x, g)
    x = affine(x, g, zoom, zoom_share=zoom_share)
    if colour_share >= 1.0:  # no extra random draw: the seeded stream of the all4/aml recipes is kept
        x = _colour(x, g, tint)
    else:
        idx = torch.nonzero(torch.rand(x.shape[0], generator=g) < colour_share).flatten()
        if idx.numel():
            x[idx] = _colour(x[idx], g, tint)
    return focus_and_resolution(x, g, p_blur, p_res)


def cutmix(x: torch.Tensor, g: torch.Generator, p: float) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """CutMix (Yun et al., ICCV 2019): with probability ``p``, paste one random box from a shuffled copy of
    the batch into every image. Returns the batch, the permutation (None when nothing was pasted) and
    the share of each image that is still its own; the loss weights the two labels by that share.

    Why for smear fields: a pasted box carries the other field's cells, so the network has to find the
    class in the cells it sees rather than in the field's overall look (stain, density, session).
    """
    if p <= 0 or float(torch.rand(1, generator=g)) >= p:
        return x, None, 1.0
    n, _, h, w = x.shape
    share = float(torch.rand(1, generator=g))  # area pasted over, uniform in [0, 1)
    bh, bw = int(round(h * share ** 0.5)), int(round(w * share ** 0.5))
    if bh == 0 or bw == 0:
        return x, None, 1.0
    top = int(torch.randint(0, h - bh + 1, (1,), generator=g))
    left = int(torch.randint(0, w - bw + 1, (1,), generator=g))
    perm = torch.randperm(n, generator=g)
    x = x.clone()
    x[:, :, top:top + bh, left:left + bw] = x[perm, :, top:top + bh, left:left + bw]
    return x, perm, 1.0 - (bh * bw) / (h * w)


SCALE_BAR_BOX = (0.18, 0.38)  # (height, width) share of the frame, bottom right, that holds the ALL set's scale bars


def scale_bar_box(h: int, w: int) -> tuple[int, int]:
    """Rows and columns of the bottom-right scale-bar corner (SCALE_BAR_BOX) in an h x w frame."""
    return max(1, round(h * SCALE_BAR_BOX[0])), max(1, round(w * SCALE_BAR_BOX[1]))


def corner_swap(x: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
    """Give a share ``p`` of the images the bottom-right corner of another image in the batch.

    Why: the ALL fields carry a scale bar there whose style (red text, small black box, large "200 px"
    box) follows the imaging session, and sessions follow the class, so a network can learn the label
    from the bar. With class-balanced batches a swapped-in corner comes from a random class, which
    leaves the bar uninformative while keeping every bar style in the training images. Applied before
    any flip or rotation, while the corner is still where the camera put it. No random draw at p = 0.
    """
    if p <= 0:
        return x
    n, _, h, w = x.shape
    bh, bw = scale_bar_box(h, w)
    chosen = torch.rand(n, generator=g) < p
    donor = torch.randperm(n, generator=g)
    idx = torch.nonzero(chosen).flatten()
    x = x.clone()
    x[idx, :, h - bh:, w - bw:] = x[donor[idx], :, h - bh:, w - bw:]
    return x
