"""The training objective: a reconstruction loss plus the reference's pull on the code.

The reference adds ``|0.5 - code.std(0).mean()| + |code.mean()|`` (weight 1e-4) to every loss so
the code neither collapses nor drifts; histae keeps it, weight from ``trainer.code_reg_weight``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn


def code_regularizer(code: Tensor) -> tuple[Tensor, Tensor]:
    """The reference's pull on a (B, code_size) code: ``|0.5 - mean std|`` and ``|mean|``, scalars."""
    return (0.5 - code.std(dim=0).mean()).abs(), code.mean().abs()


class Objective(nn.Module):
    """``criterion(output, target) + weight * (batch_std + batch_mean)`` with every part named.

    ``forward(output, code, target)``: (B, C, H, W), (B, code_size), (B, C, H, W) -> a dict of
    scalars ``loss`` (what is minimised), ``loss_reconstruction``, ``loss_batch_std``,
    ``loss_batch_mean``: the reference's names, and metrics.csv's columns.
    """

    def __init__(
        self, criterion: Callable[[Tensor, Tensor], Tensor], code_reg_weight: float
    ) -> None:
        super().__init__()
        self.criterion = criterion
        self.code_reg_weight = float(code_reg_weight)

    def forward(
        self,
        output: Tensor,
        code: Tensor,
        target: Tensor,
        criterion: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> dict[str, Tensor]:
        # ``criterion``: this batch's loss with its targets' histograms cached (histae.perf)
        reconstruction = (criterion or self.criterion)(output, target)
        batch_std, batch_mean = code_regularizer(code)
        return {
            "loss": reconstruction + self.code_reg_weight * (batch_std + batch_mean),
            "loss_reconstruction": reconstruction,
            "loss_batch_std": batch_std,
            "loss_batch_mean": batch_mean,
        }
