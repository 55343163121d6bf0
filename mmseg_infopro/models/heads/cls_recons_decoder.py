"""The reconstruction term of :class:`InfoProClsLocalHead`.

:class:`ImageReconsDecoder` is the InfoPro release's ``Decoder``
(``blackfeather-wang/InfoPro-Pytorch``, ``Experiments on
CIFAR-SVHN-STL10/networks/auxiliary_nets.py``): (N, C, h, w) features ->
(N, 3, H, W) image in [0, 1], its loss BCE against the un-normalised image.
The ImageNet experiments use the segmentation decoder,
:class:`ReconstructionDecoder`, instead.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from torch import Tensor

from mmseg.registry import MODELS

_DEFAULT_NORM = dict(type='BN', requires_grad=True)


@MODELS.register_module()
class ImageReconsDecoder(nn.Module):
    """The release's reconstruction decoder.

    The features are resized bilinearly (``align_corners=True``, as the
    release) to the image size, then 3x3 conv C->``channels`` (12 in the
    release, times its ``aux_net_widen``) with bias -> norm -> ReLU -> 3x3
    conv ->3 with bias; sigmoid gives the image in [0, 1]. The loss is
    binary cross-entropy against the un-normalised image in [0, 1],
    averaged over pixels and channels (computed from the logits: the same
    value, safe under autocast).
    """

    def __init__(self, in_channels: int, channels: int = 12,
                 norm_cfg: Optional[dict] = None,
                 align_corners: bool = True):
        super().__init__()
        self.align_corners = align_corners
        self.conv1 = nn.Conv2d(in_channels, channels, 3, 1, 1)
        self.norm1 = build_norm_layer(dict(norm_cfg or _DEFAULT_NORM),
                                      channels)[1]
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, 3, 3, 1, 1)

    def forward_logits(self, x: Tensor, size: Sequence[int]) -> Tensor:
        """(N, C, h, w) -> (N, 3, H, W) logits, ``size = (H, W)``."""
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode='bilinear',
                              align_corners=self.align_corners)
        return self.conv2(self.relu(self.norm1(self.conv1(x))))

    def forward(self, x: Tensor, size: Sequence[int]) -> Tensor:
        """(N, C, h, w) -> (N, 3, H, W) reconstruction in [0, 1]."""
        return torch.sigmoid(self.forward_logits(x, size))

    def loss(self, x: Tensor, target: Tensor,
             mask: Optional[Tensor] = None) -> dict:
        """BCE against ``target`` (N, 3, H, W) in [0, 1]; ``mask`` (N, 1,
        H, W), optional, 1 for real pixels. Returns ``loss_recons``
        (unweighted)."""
        logits = self.forward_logits(x, target.shape[-2:]).float()
        bce = F.binary_cross_entropy_with_logits(
            logits, target.float(), reduction='none')
        if mask is None:
            return dict(loss_recons=bce.mean())
        mask = mask.to(bce.dtype)
        denom = (mask.sum() * bce.shape[1]).clamp(min=1.0)
        return dict(loss_recons=(bce * mask).sum() / denom)
