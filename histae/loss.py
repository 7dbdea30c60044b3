"""Losses between the soft histograms of a reconstruction and of its target.

:func:`histogram_loss` is the math, :class:`HistogramLoss` the module a Hydra config
instantiates (``conf/loss/histogram.yaml``). The loss is ``distance(hist(output), hist(target))``
with one histogram per image, channels pooled, as the reference ((B, C, H, W) -> (B, C*H*W) ->
(B, bins)), or one per channel ((B, C, bins)).

The reference's names (l1/mae, l2/mse, kl_div, bce, ce) keep the reference's formulas exactly,
quirks included; the names it did not have (emd, hellinger, chi2, sorted_w1) are proper
distances between distributions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# _soft_histogram: soft_histogram without its argument checks, for HistogramLoss's steps.
from histae.histogram import _soft_histogram, check_histogram_args
from histae.names import LOSS_NAMES

# Keeps roots, logs and divisions finite and differentiable at empty histograms and bins.
EPS = 1e-8
# The reference adds this to the p-norm it divides by.
NORM_EPS = 1e-7

Distance = Callable[[Tensor, Tensor], Tensor]


def check_loss_args(
    bins: int,
    min: float,
    max: float,
    sigma: float,
    loss: str | Distance,
    normalize: bool | float,
    kernel: str,
) -> None:
    """Raise ``ValueError`` naming the ``loss.*`` config key of the first bad argument."""
    check_histogram_args(bins, min, max, sigma, kernel, prefix="loss.")
    if not callable(loss) and loss not in LOSS_NAMES:
        raise ValueError(
            f"loss.loss must be one of {', '.join(LOSS_NAMES)} or a callable; got {loss!r}"
        )
    if not isinstance(normalize, bool):
        bad_type = not isinstance(normalize, (int, float))
        if bad_type or math.isnan(normalize) or normalize <= 0:
            raise ValueError(
                f"loss.normalize must be true, false or a p-norm order > 0, got {normalize!r}"
            )
    if loss == "bce" and normalize is False:
        raise ValueError(
            "loss.loss 'bce' needs histograms in [0, 1]: set loss.normalize to true or a "
            "p-norm order, got false"
        )


def flatten_values(x: Tensor, per_channel: bool) -> Tensor:
    """(B, C, ...) images -> (B, N) values per image, or (B, C, N) per channel.

    A histogram does not depend on the order of its values, so a pooled one reads a
    channels-last batch in memory order: a view, whose gradient reaches the decoder in the
    decoder's own layout. ``flatten(1)`` would copy the batch into the plain layout and hand
    back a plain-layout gradient, which the channels-last decoder's backward then converts.
    Per channel a channel's values are strided in channels-last memory; they are copied
    (reading them in place, and handing back a strided gradient, measured no faster).
    """
    if per_channel:
        return x.flatten(2)
    if (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return x.permute(0, 2, 3, 1).flatten(1)
    return x.flatten(1)


def histogram_loss(
    output: Tensor,
    target: Tensor,
    bins: int,
    min: float,
    max: float,
    sigma: float,
    loss: str | Distance = "l1",
    normalize: bool | float = False,
    per_channel: bool = False,
    kernel: str = "sigmoid",
    target_hist: Tensor | None = None,
) -> Tensor:
    """Distance between the soft histograms of ``output`` and ``target``.

    Args:
        output: (B, C, H, W) reconstruction (any (B, C, ...) works).
        target: same shape, the images.
        bins, min, max, sigma, kernel: of :func:`histae.histogram.soft_histogram`.
        loss: a name of :data:`LOSS_NAMES` or ``callable(hist_out, hist_target) -> scalar``:
            ``"l1"``/``"mae"``, ``"l2"``/``"mse"``: mean over histograms and bins.
            ``"kl_div"``: ``F.kl_div(hist_out, hist_target, reduction="batchmean")`` exactly
            as the reference, which hands the output histogram over where ``kl_div`` expects
            log-probabilities: ``sum(t * (log t - h_out)) / B``.
            ``"bce"``: binary cross entropy per bin (needs ``normalize``).
            ``"ce"``: cross entropy with the output histogram as logits over the bins and
            the target histogram as class probabilities.
            ``"emd"``: 1-D earth mover's distance (W1, in value units) between the histograms
            normalised to unit mass: ``delta * sum |CDF_out - CDF_target|``; it tends to
            ``sorted_w1`` for narrow bins and a steep kernel.
            ``"hellinger"``: ``||sqrt(p) - sqrt(q)|| / sqrt(2)`` of the unit-mass histograms,
            in [0, 1].
            ``"chi2"``: ``sum((p - q)**2 / (p + q)) / 2`` of the unit-mass histograms, in [0, 1].
            ``"sorted_w1"``: no histogram: exact 1-D Wasserstein-1 distance between the pixel
            values, mean ``|sort(output) - sort(target)|`` per image (or channel); ignores
            bins, sigma, range and normalize.
            emd, hellinger and chi2 normalise each histogram themselves, so ``normalize`` does
            not change them (beyond ``EPS``).
        normalize: ``False``: raw soft counts. ``True``: both histograms divided by the
            number of values per histogram (C*H*W, or H*W per channel). A number ``p``: both
            divided by the p-norm of the output histogram + 1e-7 (the reference's rule).
        per_channel: one histogram per channel (B, C, bins) instead of per image (B, bins).
        target_hist: (B, bins) or (B, C, bins), ``target``'s histogram computed beforehand
            (:meth:`HistogramLoss.target_histogram`); ``None``: computed here, without
            autograd bookkeeping unless ``target`` requires a gradient.

    Returns:
        Scalar loss.

    Example:
        >>> x = torch.full((1, 1, 2, 2), 0.25)  # the centre of bin 0 of 2
        >>> round(histogram_loss(x + 0.5, x, 2, 0.0, 1.0, 1e4, loss="emd").item(), 4)
        0.5
    """
    check_loss_args(bins, min, max, sigma, loss, normalize, kernel)
    return _histogram_loss(
        output, target, bins, min, max, sigma, loss, normalize, per_channel, kernel, target_hist
    )


def _histogram_loss(
    output: Tensor,
    target: Tensor,
    bins: int,
    min: float,
    max: float,
    sigma: float,
    loss: str | Distance,
    normalize: bool | float,
    per_channel: bool,
    kernel: str,
    target_hist: Tensor | None,
) -> Tensor:
    """:func:`histogram_loss` for arguments already checked by :func:`check_loss_args` (by it,
    or once by :class:`HistogramLoss`); only the tensors, which change every step, are
    checked here."""
    if output.shape != target.shape:
        raise ValueError(f"output and target shapes differ: {output.shape} vs {target.shape}")
    if output.dim() < (3 if per_channel else 2):
        want = "(B, C, ...)" if per_channel else "(B, ...)"
        raise ValueError(f"output must be {want}, got shape {tuple(output.shape)}")
    out = flatten_values(output, per_channel)  # (B, N) or (B, C, N)
    tgt = flatten_values(target, per_channel)
    if loss == "sorted_w1":
        return sorted_w1(out, tgt)
    hist_out = _soft_histogram(out, bins, min, max, sigma, kernel)  # (B, bins) or (B, C, bins)
    if target_hist is None:
        hist_tgt = _soft_histogram(tgt, bins, min, max, sigma, kernel)
    elif target_hist.shape != hist_out.shape:
        raise ValueError(
            f"target_hist has shape {tuple(target_hist.shape)}, expected {tuple(hist_out.shape)}"
        )
    else:
        hist_tgt = target_hist
    if normalize is True:
        hist_out, hist_tgt = hist_out / out.shape[-1], hist_tgt / out.shape[-1]
    elif normalize is not False:
        norm = torch.linalg.vector_norm(hist_out, ord=normalize, dim=-1, keepdim=True)
        hist_out, hist_tgt = hist_out / (norm + NORM_EPS), hist_tgt / (norm + NORM_EPS)
    return histogram_distance(hist_out, hist_tgt, loss, (max - min) / bins)


def histogram_distance(
    hist_out: Tensor, hist_target: Tensor, loss: str | Distance, bin_width: float = 1.0
) -> Tensor:
    """Scalar distance between (..., bins) histograms by a name of :data:`LOSS_NAMES`
    (``sorted_w1`` excepted), as :func:`histogram_loss` describes; ``bin_width`` scales emd.

    Example:
        >>> p, q = torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0, 1.0]])
        >>> histogram_distance(p, q, "emd", bin_width=0.25).item()
        0.75
    """
    if callable(loss):
        return loss(hist_out, hist_target)
    if loss in ("l1", "mae"):
        return F.l1_loss(hist_out, hist_target)
    if loss in ("l2", "mse"):
        return F.mse_loss(hist_out, hist_target)
    if loss == "kl_div":
        return F.kl_div(hist_out, hist_target, reduction="batchmean")
    if loss == "bce":
        # Soft counts can exceed [0, 1] by rounding; BCE raises outside it.
        return F.binary_cross_entropy(hist_out.clamp(0.0, 1.0), hist_target)
    if loss == "ce":
        bins = hist_out.shape[-1]
        return F.cross_entropy(hist_out.reshape(-1, bins), hist_target.reshape(-1, bins))
    if loss in ("emd", "hellinger", "chi2"):
        p, q = _unit_mass(hist_out), _unit_mass(hist_target)
        if loss == "emd":
            return (p.cumsum(-1) - q.cumsum(-1)).abs().sum(-1).mean() * bin_width
        if loss == "hellinger":
            diff = (p + EPS).sqrt() - (q + EPS).sqrt()
            return (torch.linalg.vector_norm(diff, dim=-1) / math.sqrt(2.0)).mean()
        return (0.5 * ((p - q) ** 2 / (p + q + EPS)).sum(-1)).mean()
    raise ValueError(
        f"loss.loss must be one of {', '.join(LOSS_NAMES)} or a callable; got {loss!r}"
    )


def sorted_w1(output: Tensor, target: Tensor) -> Tensor:
    """Mean exact 1-D Wasserstein-1 distance between the values of matching rows.

    Args:
        output: (..., N) values; one empirical distribution per row.
        target: (..., N).

    Returns:
        Scalar: mean over rows of ``mean(|sort(output) - sort(target)|)``.

    Example:
        >>> round(sorted_w1(torch.tensor([[0.3, 0.1]]), torch.tensor([[0.0, 0.2]])).item(), 6)
        0.1
    """
    return (output.sort(-1).values - target.sort(-1).values).abs().mean()


def _unit_mass(hist: Tensor) -> Tensor:
    """(..., bins) -> the same divided by its total (a distribution over the bins)."""
    return hist / (hist.sum(-1, keepdim=True) + EPS)


class HistogramLoss(nn.Module):
    """:func:`histogram_loss` with its options fixed; arguments are checked here, once.

    Example:
        >>> criterion = HistogramLoss(bins=2, sigma=1e4, loss="emd")
        >>> x = torch.full((1, 1, 2, 2), 0.25)
        >>> round(criterion(x + 0.5, x).item(), 4)
        0.5
    """

    def __init__(
        self,
        bins: int = 100,
        min: float = 0.0,
        max: float = 1.0,
        sigma: float = 100.0,
        loss: str | Distance = "l1",
        normalize: bool | float = False,
        per_channel: bool = False,
        kernel: str = "sigmoid",
    ) -> None:
        super().__init__()
        check_loss_args(bins, min, max, sigma, loss, normalize, kernel)
        self.bins, self.min, self.max, self.sigma = bins, float(min), float(max), float(sigma)
        self.loss, self.normalize = loss, normalize
        self.per_channel, self.kernel = bool(per_channel), kernel

    @property
    def has_target_histogram(self) -> bool:
        """Whether the loss reads a histogram of the target (all but ``sorted_w1``)."""
        return self.loss != "sorted_w1"

    @torch.no_grad()
    def target_histogram(self, target: Tensor) -> Tensor:
        """(B, C, H, W) images -> (B, bins), or (B, C, bins) per channel: what ``forward``
        compares the output's histogram with, for ``forward(..., target_hist=...)``.

        A tile's histogram never changes, so a trainer can compute it once per tile instead
        of once per step.
        """
        if not self.has_target_histogram:
            raise ValueError("loss.loss 'sorted_w1' compares sorted values, not histograms")
        tgt = flatten_values(target, self.per_channel)
        return _soft_histogram(tgt, self.bins, self.min, self.max, self.sigma, self.kernel)

    def forward(self, output: Tensor, target: Tensor, target_hist: Tensor | None = None) -> Tensor:
        """(B, C, H, W) reconstruction and images -> scalar loss; ``target_hist``: the
        target's histogram from :meth:`target_histogram`, if already known. The arguments
        were checked in ``__init__``: no per-step re-checking."""
        return _histogram_loss(
            output,
            target,
            self.bins,
            self.min,
            self.max,
            self.sigma,
            self.loss,
            self.normalize,
            self.per_channel,
            self.kernel,
            target_hist,
        )

    def extra_repr(self) -> str:
        return (
            f"bins={self.bins}, min={self.min}, max={self.max}, sigma={self.sigma}, "
            f"loss={self.loss!r}, normalize={self.normalize}, per_channel={self.per_channel}, "
            f"kernel={self.kernel!r}"
        )


def composite_loss(
    output: Tensor, target: Tensor, terms: Sequence[tuple[float, Distance]]
) -> Tensor:
    """Weighted sum of losses: ``sum(weight * loss(output, target))`` over ``terms``.

    A term of weight 0 is not evaluated at all, so sweeping a weight down to 0 also removes
    its cost (and a loss that would be undefined on this input cannot poison the sum).

    Args:
        output: (B, C, H, W) reconstructions.
        target: same shape.
        terms: (weight, loss) pairs; each loss maps (output, target) to a scalar.

    Returns:
        Scalar loss.

    Example:
        >>> x, y = torch.zeros(1, 1, 1, 2), torch.ones(1, 1, 1, 2)
        >>> composite_loss(x, y, [(0.5, F.l1_loss), (0.0, F.mse_loss)]).item()
        0.5
    """
    total = output.new_zeros(())
    for weight, loss in terms:
        if weight != 0:
            total = total + weight * loss(output, target)
    return total


class CompositeLoss(nn.Module):
    """A weighted sum of losses, each term a ``{weight, loss}`` mapping (``conf/loss/composite``).

    ``terms`` is what Hydra builds from the config (None: ``conf/loss/composite.yaml``'s, the
    pooled :class:`HistogramLoss` at weight 1 plus pixel L1 at weight 0.1): a mapping from a term's name to its
    ``weight`` (a number, 0 switches the term off) and its ``loss`` (a module or callable). The
    terms with a nonzero weight are kept as submodules, so their state (e.g. the sliced
    Wasserstein step counter) is in ``state_dict()``.

    Example:
        >>> criterion = CompositeLoss({"l1": {"weight": 0.5, "loss": nn.L1Loss()},
        ...                            "mse": {"weight": 0.0, "loss": nn.MSELoss()}})
        >>> criterion(torch.zeros(1, 1, 1, 2), torch.ones(1, 1, 1, 2)).item()
        0.5
    """

    def __init__(self, terms: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        if terms is None:  # conf/loss/composite.yaml: the reference's loss + 0.1 x pixel L1
            terms = {
                "histogram": {"weight": 1.0, "loss": HistogramLoss()},
                "l1": {"weight": 0.1, "loss": nn.L1Loss()},
            }
        if not isinstance(terms, Mapping) or not terms:
            raise ValueError(f"loss.terms must name at least one term, got {terms!r}")
        self.weights: dict[str, float] = {}
        self.terms = nn.ModuleDict()
        for name, term in terms.items():
            weight, loss = term.get("weight"), term.get("loss")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ValueError(f"loss.terms.{name}.weight must be a number, got {weight!r}")
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"loss.terms.{name}.weight must be >= 0, got {weight!r}")
            if not callable(loss):
                raise ValueError(f"loss.terms.{name}.loss must be a loss module, got {loss!r}")
            if weight == 0:
                continue  # not built into the sum: costs nothing
            self.weights[name] = float(weight)
            self.terms[name] = loss if isinstance(loss, nn.Module) else _Wrapped(loss)
        if not self.weights:
            raise ValueError("loss.terms: every weight is 0; give at least one term a weight > 0")

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        """(B, C, H, W) reconstruction and images -> scalar loss."""
        return composite_loss(output, target, [(self.weights[k], m) for k, m in self.terms.items()])

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={w:g}" for k, w in self.weights.items())


class _Wrapped(nn.Module):
    """A plain callable loss as a module (so it fits an ``nn.ModuleDict``)."""

    def __init__(self, fn: Distance) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        return self.fn(output, target)
