"""Supervised contrastive loss, the InfoPro release's ``'contrast'`` aux
loss (``blackfeather-wang/InfoPro-Pytorch``, ``Experiments on
CIFAR-SVHN-STL10/networks/losses.py``): :class:`SupConLoss` maps
L2-normalised features (N, D) and labels (N,) to a scalar.
"""
import torch
import torch.nn as nn
from torch import Tensor

from mmseg.registry import MODELS


@MODELS.register_module()
class SupConLoss(nn.Module):
    """Supervised contrastive loss (Khosla et al. 2020), one view per sample,
    as the release computes it (``networks/losses.py``, contrast_mode
    'all', one view).

    For anchor ``i`` with positives ``P(i) = {p != i : y_p = y_i}``::

        l_i = -(T / T_base) / |P(i)| * sum_{p in P(i)} log(
                  exp(z_i.z_p / T) / sum_{a != i} exp(z_i.z_a / T))

    and ``l_i = 0`` when ``P(i)`` is empty; the loss is the mean of ``l_i``
    over *all* N anchors (those without positives count as 0, as in the
    release).

    Args:
        temperature: T (0.07 in the release).
        base_temperature: T_base (0.07).
    """

    def __init__(self, temperature: float = 0.07,
                 base_temperature: float = 0.07):
        super().__init__()
        self.temperature = temperature
        self.base_temperature = base_temperature

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """``features`` (N, D), L2-normalised; ``labels`` (N,) -> scalar."""
        if features.dim() != 2 or labels.shape != features.shape[:1]:
            raise ValueError(
                'SupConLoss expects features (N, D) and labels (N,), got '
                f'{tuple(features.shape)} and {tuple(labels.shape)}')
        z = features.float()
        n = z.shape[0]
        logits = z @ z.t() / self.temperature
        eye = torch.eye(n, dtype=torch.bool, device=z.device)
        log_denom = torch.logsumexp(logits.masked_fill(eye, float('-inf')),
                                    dim=1, keepdim=True)
        log_prob = logits - log_denom
        pos = (labels.view(-1, 1) == labels.view(1, -1)) & ~eye
        num_pos = pos.sum(1)
        mean_log_prob_pos = (log_prob.masked_fill(~pos, 0.0).sum(1) /
                             num_pos.clamp(min=1))
        scale = self.temperature / self.base_temperature
        return -(scale * mean_log_prob_pos).mean()
