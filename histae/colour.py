"""Colour losses from the literature that see the joint (R, G, B) distribution of an image.

The reference's histograms are 1-D (channels pooled, or one per channel), so they lose which
values occur together in one pixel: a perfect match of every channel's histogram can still paint
the wrong colours. Each loss here compares whole pixel colours:

- :func:`sliced_wasserstein`: the sliced Wasserstein loss of Heitz et al., "A Sliced Wasserstein
  Loss for Neural Texture Synthesis" (CVPR 2021), applied to pixel colours: project both images'
  RGB triplets on random directions, sort, compare.
- :func:`soft_joint_histogram`: a 3-D (R, G, B) histogram built from the reference's sigmoid
  kernel, one factor per channel (separable).
- :func:`rgbuv_histogram`: the RGB-uv log-chroma histogram of HistoGAN (Afifi, Brubaker and Brown,
  "HistoGAN: Controlling Colors of GAN-Generated and Real Images via Color Histograms", CVPR
  2021), compared by the Hellinger distance as in the paper.

Each is a pure function plus a thin module a Hydra config instantiates (``conf/loss/``). Their
memory is flat in the number of values: values are taken in chunks whose intermediate tensors
are recomputed in the backward pass (activation checkpointing), so only the input and the small
histograms stay alive between forward and backward.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from histae.histogram import check_histogram_args
from histae.loss import EPS, NORM_EPS, histogram_distance

# Elements of the largest intermediate tensor one chunk may build (16 M, 64 MiB in float32):
# a training batch of 64 32x32 tiles fits in one chunk, so it pays no recomputation.
CHUNK_ELEMENTS = 2**24
# Distances the joint histogram accepts: the reference's bin-wise ones, and "cdf", the L1 distance
# between the 3-D cumulative distributions, which (like emd in 1-D) moves mass across empty bins.
JOINT_DISTANCES = ("l1", "mae", "l2", "mse", "kl_div", "bce", "ce", "hellinger", "chi2", "cdf")
# Distances the RGB-uv histogram accepts (HistoGAN uses hellinger).
RGBUV_DISTANCES = ("hellinger", "l1", "l2", "chi2")
# HistoGAN's epsilon inside the logarithms and the intensity's square root.
RGBUV_EPS = 1e-6


def chunked_sum(
    fn: Callable[..., Tensor],
    inputs: tuple[Tensor, ...],
    chunk: int,
    whole: tuple[Tensor, ...] = (),
) -> Tensor:
    """``sum(fn(*parts, *whole))`` over chunks of ``chunk`` values along the last dim of ``inputs``.

    When a gradient is needed and there is more than one chunk, each chunk runs under
    activation checkpointing, so its intermediates live only while that chunk is computed (in
    the forward and again in the backward pass): peak memory is one chunk's, whatever N.

    Args:
        fn: maps the (..., n) slices of ``inputs`` to a tensor of a shape independent of n.
        inputs: tensors sharing their last dimension N, sliced into chunks.
        chunk: values per chunk (>= 1).
        whole: tensors every chunk gets whole (pass them here, not in a closure, so that a
            gradient they need also puts the chunks under checkpointing).
    """
    n = inputs[0].shape[-1]
    if n <= chunk:
        return fn(*inputs, *whole)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (*inputs, *whole))
    total: Tensor | None = None
    for start in range(0, n, chunk):
        parts = tuple(t[..., start : start + chunk] for t in inputs)
        args = (*parts, *whole)
        part = checkpoint(fn, *args, use_reentrant=False) if grad else fn(*args)
        total = part if total is None else total + part
    assert total is not None
    return total


def _chunk_for(row_elements: int, budget: int) -> int:
    """Values per chunk so that ``values * row_elements`` stays within ``budget``."""
    return max(1, budget // max(row_elements, 1))


def _colour_values(x: Tensor, name: str) -> Tensor:
    """(..., 3, H, W) or (..., 3, N) -> (..., 3, N), refusing anything but three channels."""
    if x.dim() >= 4:
        x = x.flatten(-2)
    if x.dim() < 2 or x.shape[-2] != 3:
        raise ValueError(f"{name} must be (..., 3, H, W) RGB images, got shape {tuple(x.shape)}")
    return x


# --------------------------------------------------------------------------- sliced Wasserstein


def random_directions(count: int, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    """(count, 3) directions uniform on the unit sphere: normalised Gaussian draws.

    Drawn on ``generator``'s device, so CPU and CUDA jobs each use their own generator.
    """
    d = torch.randn(count, 3, generator=generator, device=generator.device, dtype=dtype)
    return d / torch.linalg.vector_norm(d, dim=-1, keepdim=True).clamp_min(1e-12)


def sliced_wasserstein(
    output: Tensor, target: Tensor, directions: Tensor, chunk: int | None = None
) -> Tensor:
    """Sliced Wasserstein-2 (squared) between the pixel colours of matching images.

    Heitz et al. (CVPR 2021), Eq. 4-5, on RGB triplets instead of VGG features: both images'
    N colours are projected on each direction ``d``, the projections sorted, and the loss is
    the mean of ``(sort(<output, d>) - sort(<target, d>))**2`` over directions, values and
    images. With the three axes as directions it is the mean per-channel squared 1-D W2.

    Args:
        output: (B, 3, H, W) reconstructions (or (B, 3, N) colours; any leading dims).
        target: same shape.
        directions: (K, 3) unit vectors in colour space.
        chunk: directions per chunk (None: as many as fit in :data:`CHUNK_ELEMENTS`).

    Returns:
        Scalar, in squared pixel-value units.

    Example:
        >>> x = torch.zeros(1, 3, 1, 2)
        >>> y = x.clone(); y[0, 0] = 1.0  # red instead of black
        >>> sliced_wasserstein(y, x, torch.tensor([[1.0, 0.0, 0.0]])).item()
        1.0
    """
    if output.shape != target.shape:
        raise ValueError(f"output and target shapes differ: {output.shape} vs {target.shape}")
    out, tgt = _colour_values(output, "output"), _colour_values(target, "target")
    if directions.dim() != 2 or directions.shape[-1] != 3 or len(directions) == 0:
        raise ValueError(f"directions must be (K, 3) with K >= 1, got {tuple(directions.shape)}")
    directions = directions.to(out.dtype)
    rows = out[..., 0, :].numel()  # values per direction over the whole batch
    if chunk is None:
        chunk = _chunk_for(rows, CHUNK_ELEMENTS)

    def part(d: Tensor, o: Tensor, t: Tensor) -> Tensor:  # (3, k) directions -> summed squares
        po = (d.T @ o).sort(-1).values  # (..., k, N)
        pt = (d.T @ t).sort(-1).values
        return (po - pt).pow(2).sum()

    # chunked_sum slices the last dimension: directions as (3, K) columns.
    total = chunked_sum(part, (directions.T.contiguous(),), chunk, whole=(out, tgt))
    return total / (rows * len(directions))


class SlicedWassersteinLoss(nn.Module):
    """:func:`sliced_wasserstein` with ``directions`` new random directions at every step.

    A training call (gradients enabled) draws its directions from a ``torch.Generator`` the
    module owns, on the input's device, seeded with ``seed`` when first used, so step t of any
    job with the same seed uses the same directions. The generator's state is module state
    (``state_dict()["_extra_state"]``), so a job resumed from a checkpoint draws what an
    uninterrupted one would have. A call without gradients (validation) always uses the same
    directions, those of a fresh generator seeded with ``seed + 2**31``: validation losses are
    comparable over a run and validation does not move the training sequence.

    Example:
        >>> criterion = SlicedWassersteinLoss(directions=8, seed=0)
        >>> x = torch.rand(2, 3, 4, 4)
        >>> criterion(x, x).item()
        0.0
    """

    def __init__(self, directions: int = 32, seed: int = 0) -> None:
        super().__init__()
        if isinstance(directions, bool) or not isinstance(directions, int) or directions < 1:
            raise ValueError(f"loss.directions must be an integer >= 1, got {directions!r}")
        # < 2**31: CPU generators keep 32 bits of a seed, and the validation seed adds 2**31.
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
            raise ValueError(f"loss.seed must be an integer in [0, 2**31), got {seed!r}")
        self.directions, self.seed = directions, seed
        self._generator: torch.Generator | None = None
        self._restored: Tensor | None = None  # a loaded generator state, applied on next use

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        """(B, 3, H, W) reconstruction and images -> scalar loss."""
        return sliced_wasserstein(output, target, self.draw(output.device, output.dtype))

    def draw(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The (directions, 3) directions of this call; a training call advances the generator."""
        if not torch.is_grad_enabled():
            fixed = torch.Generator(device=device).manual_seed(self.seed + 2**31)
            return random_directions(self.directions, fixed, dtype)
        return random_directions(self.directions, self._training_generator(device), dtype)

    def _training_generator(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != torch.device(device):
            generator = torch.Generator(device=device).manual_seed(self.seed)
            if self._restored is not None:
                generator.set_state(self._restored)
                self._restored = None
            self._generator = generator
        return self._generator

    def get_extra_state(self) -> dict[str, Tensor | None]:
        """The training generator's state (None before the first training call)."""
        if self._generator is None:
            return {"generator": self._restored}
        return {"generator": self._generator.get_state()}

    def set_extra_state(self, state: dict[str, Tensor | None]) -> None:
        self._generator, self._restored = None, state.get("generator")

    def extra_repr(self) -> str:
        return f"directions={self.directions}, seed={self.seed}"


# ------------------------------------------------------------------------ joint RGB histogram


def sigmoid_bin_weights(x: Tensor, bins: int, min: float, max: float, sigma: float) -> Tensor:
    """The reference's kernel, dense: (..., N) values -> (..., N, bins) soft bin memberships.

    ``sigmoid(sigma * (x - e_k)) - sigmoid(sigma * (x - e_{k+1}))`` with ``e_k = min + k*delta``,
    the same per-value weights :func:`histae.histogram.soft_histogram` sums.
    """
    delta = (max - min) / bins
    centers = min + delta * (torch.arange(bins, device=x.device, dtype=x.dtype) + 0.5)
    d = x.unsqueeze(-1) - centers  # (..., N, bins)
    return torch.sigmoid(sigma * (d + delta / 2)) - torch.sigmoid(sigma * (d - delta / 2))


def soft_joint_histogram(
    x: Tensor, bins: int, min: float, max: float, sigma: float, chunk: int | None = None
) -> Tensor:
    """Soft 3-D colour histogram: every pixel adds ``w_R(r) * w_G(g) * w_B(b)`` to a cell.

    ``w`` is the reference's sigmoid kernel (:func:`sigmoid_bin_weights`) on each channel, so
    the joint kernel is separable and each channel's marginal of the result is that channel's
    soft histogram, scaled by the other channels' in-range mass. The (N, bins**3) tensor of
    per-pixel cell weights is never built: per chunk of pixels, the R x G outer product
    (n, bins**2) is contracted with the B weights by one matrix product.

    Args:
        x: (..., 3, H, W) images or (..., 3, N) colours.
        bins: bins per channel over [min, max] (``bins**3`` cells).
        min, max, sigma: as :func:`histae.histogram.soft_histogram`.
        chunk: pixels per chunk (None: as many as fit in :data:`CHUNK_ELEMENTS`).

    Returns:
        (..., bins, bins, bins) soft counts indexed [r, g, b].

    Example:
        >>> x = torch.tensor([[[0.25], [0.75], [0.25]]])  # one pixel, (1, 3, 1)
        >>> h = soft_joint_histogram(x, 2, 0.0, 1.0, sigma=1e4)
        >>> h[0, 0, 1, 0].item()
        1.0
    """
    check_histogram_args(bins, min, max, sigma, "sigmoid", prefix="loss.")
    values = _colour_values(x, "x")
    lead = values.shape[:-2]
    if chunk is None:
        chunk = _chunk_for(math.prod(lead) * bins * bins, CHUNK_ELEMENTS)

    def part(v: Tensor) -> Tensor:  # (..., 3, n) -> (..., bins**2, bins)
        w = sigmoid_bin_weights(v, bins, min, max, sigma)  # (..., 3, n, bins)
        rg = (w[..., 0, :, :, None] * w[..., 1, :, None, :]).flatten(-2)  # (..., n, bins**2)
        return rg.transpose(-1, -2) @ w[..., 2, :, :]

    return chunked_sum(part, (values,), chunk).unflatten(-2, (bins, bins))


def joint_histogram_loss(
    output: Tensor,
    target: Tensor,
    bins: int = 8,
    min: float = 0.0,
    max: float = 1.0,
    sigma: float = 100.0,
    loss: str = "l1",
    normalize: bool | float = False,
) -> Tensor:
    """Distance between the soft joint colour histograms of ``output`` and ``target``.

    Args:
        output: (B, 3, H, W) reconstructions.
        target: same shape.
        bins, min, max, sigma: of :func:`soft_joint_histogram`.
        loss: a name of :data:`JOINT_DISTANCES`: the reference's bin-wise distances over the
            ``bins**3`` cells (as :func:`histae.loss.histogram_distance`), or ``"cdf"``: the L1
            distance between the unit-mass 3-D cumulative distributions (cumulative sums along
            r, g and b), ``delta**3 * sum |F_out - F_target|``, in cube-volume units; in 1-D the
            same formula is the earth mover's distance.
        normalize: as :func:`histae.loss.histogram_loss` (false: raw counts; true: divided by
            the pixel count; p: divided by the output histogram's p-norm + 1e-7).

    Returns:
        Scalar loss.
    """
    _check_joint_args(bins, min, max, sigma, loss, normalize)
    if output.shape != target.shape:
        raise ValueError(f"output and target shapes differ: {output.shape} vs {target.shape}")
    h_out = soft_joint_histogram(output, bins, min, max, sigma).flatten(-3)  # (B, bins**3)
    h_tgt = soft_joint_histogram(target, bins, min, max, sigma).flatten(-3)
    pixels = _colour_values(output, "output").shape[-1]
    if normalize is True:
        h_out, h_tgt = h_out / pixels, h_tgt / pixels
    elif normalize is not False:
        norm = torch.linalg.vector_norm(h_out, ord=normalize, dim=-1, keepdim=True)
        h_out, h_tgt = h_out / (norm + NORM_EPS), h_tgt / (norm + NORM_EPS)
    if loss == "cdf":
        delta = (max - min) / bins
        p = h_out / (h_out.sum(-1, keepdim=True) + EPS)
        q = h_tgt / (h_tgt.sum(-1, keepdim=True) + EPS)
        diff = (p - q).unflatten(-1, (bins, bins, bins))
        cdf = diff.cumsum(-1).cumsum(-2).cumsum(-3)
        return cdf.abs().sum((-1, -2, -3)).mean() * delta**3
    return histogram_distance(h_out, h_tgt, loss)


def _check_joint_args(
    bins: int, min: float, max: float, sigma: float, loss: str, normalize: bool | float
) -> None:
    check_histogram_args(bins, min, max, sigma, "sigmoid", prefix="loss.")
    if loss not in JOINT_DISTANCES:
        raise ValueError(f"loss.loss must be one of {', '.join(JOINT_DISTANCES)}; got {loss!r}")
    if not isinstance(normalize, bool) and (
        not isinstance(normalize, (int, float)) or math.isnan(normalize) or normalize <= 0
    ):
        raise ValueError(
            f"loss.normalize must be true, false or a p-norm order > 0, got {normalize!r}"
        )
    if loss == "bce" and normalize is False:
        raise ValueError("loss.loss 'bce' needs histograms in [0, 1]: set loss.normalize")


class JointHistogramLoss(nn.Module):
    """:func:`joint_histogram_loss` with its options fixed; arguments are checked here, once.

    Example:
        >>> x = torch.rand(2, 3, 4, 4)
        >>> JointHistogramLoss(bins=4, loss="cdf")(x, x).item()
        0.0
    """

    def __init__(
        self,
        bins: int = 8,
        min: float = 0.0,
        max: float = 1.0,
        sigma: float = 100.0,
        loss: str = "l1",
        normalize: bool | float = False,
    ) -> None:
        super().__init__()
        _check_joint_args(bins, min, max, sigma, loss, normalize)
        self.bins, self.min, self.max, self.sigma = bins, float(min), float(max), float(sigma)
        self.loss, self.normalize = loss, normalize

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        """(B, 3, H, W) reconstruction and images -> scalar loss."""
        return joint_histogram_loss(
            output, target, self.bins, self.min, self.max, self.sigma, self.loss, self.normalize
        )

    def extra_repr(self) -> str:
        return (
            f"bins={self.bins}, min={self.min}, max={self.max}, sigma={self.sigma}, "
            f"loss={self.loss!r}, normalize={self.normalize}"
        )


# ------------------------------------------------------------------- RGB-uv (HistoGAN) histogram

# For each channel c, the two channels its log-chroma coordinates u, v are taken against.
_UV_PAIRS = ((0, 1, 2), (1, 0, 2), (2, 0, 1))


def rgbuv_coordinates(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """HistoGAN's per-pixel coordinates of (..., 3, N) colours (clamped to [0, 1] first).

    Returns:
        ``u`` and ``v`` (..., 3, N): for channel c with the other two channels c1, c2,
        ``u_c = log(I_c + eps) - log(I_c1 + eps)`` and ``v_c = log(I_c + eps) - log(I_c2 + eps)``
        (R: against G, B; G: against R, B; B: against R, G), and the intensity weight
        ``I_y = sqrt(R**2 + G**2 + B**2 + eps)`` (..., N); ``eps = 1e-6``.
    """
    x = x.clamp(0.0, 1.0)  # as HistoGAN: colours outside [0, 1] get no gradient
    logs = torch.log(x + RGBUV_EPS)  # (..., 3, N)
    index = torch.tensor(_UV_PAIRS, device=x.device)
    c, c1, c2 = index[:, 0], index[:, 1], index[:, 2]
    u = logs[..., c, :] - logs[..., c1, :]
    v = logs[..., c, :] - logs[..., c2, :]
    intensity = torch.sqrt(x.pow(2).sum(-2) + RGBUV_EPS)
    return u, v, intensity


def rgbuv_histogram(
    x: Tensor,
    bins: int = 64,
    min: float = -3.0,
    max: float = 3.0,
    tau: float = 0.02,
    chunk: int | None = None,
) -> Tensor:
    """HistoGAN's RGB-uv histogram (Afifi et al., CVPR 2021, Eq. 1-2): unit mass over 3 channels.

    ``H(u_i, v_j, c) = sum_x I_y(x) k(u_c(x) - u_i) k(v_c(x) - v_j)`` with the inverse-quadratic
    kernel ``k(d) = 1 / (1 + (d / tau)**2)`` and ``bins`` centres ``linspace(min, max, bins)``
    per axis (as the authors' code), then divided by its sum over all channels and cells
    (+ 1e-6). Coordinates: :func:`rgbuv_coordinates`. The kernel has heavy tails, so every
    pixel adds to every cell; per chunk of pixels the (n, bins) kernel matrices of u and v are
    contracted by one matrix product.

    Args:
        x: (..., 3, H, W) images or (..., 3, N) colours, nominally in [0, 1].
        bins: cells per axis (``h``; HistoGAN: 64).
        min, max: the first and last cell centre (HistoGAN: -3, 3).
        tau: the kernel's width in log-chroma units (HistoGAN's ``sigma``: 0.02).
        chunk: pixels per chunk (None: as many as fit in :data:`CHUNK_ELEMENTS`).

    Returns:
        (..., 3, bins, bins) histogram, indexed [channel, u, v], summing to 1 per image.
    """
    _check_rgbuv_args(bins, min, max, tau, "hellinger")
    values = _colour_values(x, "x")
    lead = values.shape[:-2]
    if chunk is None:
        chunk = _chunk_for(math.prod(lead) * 3 * bins, CHUNK_ELEMENTS)
    centers = torch.linspace(min, max, bins, device=values.device, dtype=values.dtype)

    def part(v: Tensor) -> Tensor:  # (..., 3, n) -> (..., 3, bins, bins)
        u_c, v_c, intensity = rgbuv_coordinates(v)
        ku = 1.0 / (1.0 + ((u_c.unsqueeze(-1) - centers) / tau) ** 2)  # (..., 3, n, bins)
        kv = 1.0 / (1.0 + ((v_c.unsqueeze(-1) - centers) / tau) ** 2)
        return (intensity[..., None, :, None] * ku).transpose(-1, -2) @ kv

    hist = chunked_sum(part, (values,), chunk)
    return hist / (hist.sum((-1, -2, -3), keepdim=True) + RGBUV_EPS)


def rgbuv_loss(
    output: Tensor,
    target: Tensor,
    bins: int = 64,
    min: float = -3.0,
    max: float = 3.0,
    tau: float = 0.02,
    loss: str = "hellinger",
) -> Tensor:
    """Distance between the RGB-uv histograms of ``output`` and ``target``.

    ``"hellinger"`` (HistoGAN's histogram loss): ``||sqrt(H_target) - sqrt(H_out)||_2 / sqrt(2)``
    per image over all 3 * bins**2 cells, averaged over the batch, in [0, 1]. ``"l1"``, ``"l2"``,
    ``"chi2"``: as :func:`histae.loss.histogram_distance`.

    Args:
        output: (B, 3, H, W) reconstructions.
        target: same shape.
        bins, min, max, tau: of :func:`rgbuv_histogram`.
        loss: a name of :data:`RGBUV_DISTANCES`.

    Returns:
        Scalar loss.
    """
    _check_rgbuv_args(bins, min, max, tau, loss)
    if output.shape != target.shape:
        raise ValueError(f"output and target shapes differ: {output.shape} vs {target.shape}")
    h_out = rgbuv_histogram(output, bins, min, max, tau).flatten(-3)  # (B, 3 * bins**2)
    h_tgt = rgbuv_histogram(target, bins, min, max, tau).flatten(-3)
    if loss == "hellinger":
        # The paper's formula as is: the heavy-tailed kernel and I_y >= 1e-3 keep every cell
        # positive, so the square roots need no epsilon.
        diff = h_tgt.sqrt() - h_out.sqrt()
        return (torch.linalg.vector_norm(diff, dim=-1) / math.sqrt(2.0)).mean()
    return histogram_distance(h_out, h_tgt, loss)


def _check_rgbuv_args(bins: int, min: float, max: float, tau: float, loss: str) -> None:
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"loss.bins must be an integer >= 2, got {bins!r}")
    for key, value in (("min", min), ("max", max), ("tau", tau)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"loss.{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"loss.{key} must be finite, got {value!r}")
    if not min < max:
        raise ValueError(f"loss.min must be < loss.max, got min={min!r}, max={max!r}")
    if not tau > 0:
        raise ValueError(f"loss.tau must be > 0, got {tau!r}")
    if loss not in RGBUV_DISTANCES:
        raise ValueError(f"loss.loss must be one of {', '.join(RGBUV_DISTANCES)}; got {loss!r}")


class RGBuvHistogramLoss(nn.Module):
    """:func:`rgbuv_loss` with its options fixed; arguments are checked here, once.

    Example:
        >>> x = torch.rand(2, 3, 4, 4)
        >>> round(RGBuvHistogramLoss(bins=16)(x, x).item(), 6)
        0.0
    """

    def __init__(
        self,
        bins: int = 64,
        min: float = -3.0,
        max: float = 3.0,
        tau: float = 0.02,
        loss: str = "hellinger",
    ) -> None:
        super().__init__()
        _check_rgbuv_args(bins, min, max, tau, loss)
        self.bins, self.min, self.max, self.tau, self.loss = bins, min, max, tau, loss

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        """(B, 3, H, W) reconstruction and images -> scalar loss."""
        return rgbuv_loss(output, target, self.bins, self.min, self.max, self.tau, self.loss)

    def extra_repr(self) -> str:
        return (
            f"bins={self.bins}, min={self.min}, max={self.max}, tau={self.tau}, loss={self.loss!r}"
        )
