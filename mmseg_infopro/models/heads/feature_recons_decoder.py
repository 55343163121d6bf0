"""Reconstruct a local module's *input features* (Pathak et al., 2022)."""
from typing import Sequence

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor

from mmseg.registry import MODELS


@MODELS.register_module()
class FeatureReconstructionDecoder(nn.Module):
    """Decodes a module's output back into the module's input features.

    "Local Learning on Transformers via Feature Reconstruction" (Pathak,
    Zhang, Samaras, arXiv 2212.14215) found that, for Swin, a local module
    learns better by reconstructing the features it was given than the
    image. The target is the module's (detached) input, so it costs no
    extra memory: module ``k`` reconstructs module ``k-1``'s output, and
    the first module the normalised image.

    1x1 conv C_out -> ``channels`` + norm + act, 3x3 conv ``channels`` ->
    ``channels`` + norm + act, 1x1 conv -> C_in, all at the output's
    resolution (cheap), then a bilinear resize to the target's size (a
    module's input has at most its output's resolution times the module's
    stride; for the first module, the image). Loss: mean squared error over
    the target's elements, padding excluded (the padding mask resized to the
    target, nearest).

    Args:
        in_channels: channels of the module's output.
        target_channels: channels of the module's input (3 for the first
            module).
        channels: hidden channels.
        norm_cfg: normalisation of the hidden convolutions.
        align_corners: of the resize.
    """

    def __init__(self,
                 in_channels: int,
                 target_channels: int,
                 channels: int = 256,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 align_corners: bool = False):
        super().__init__()
        if not isinstance(channels, int) or isinstance(channels, bool) \
                or channels < 1:
            raise ValueError('FeatureReconstructionDecoder: channels must be '
                             f'an int >= 1, got {channels!r}')
        self.align_corners = align_corners
        self.reduce = ConvModule(in_channels, channels, 1, norm_cfg=norm_cfg)
        self.conv = ConvModule(channels, channels, 3, padding=1,
                               norm_cfg=norm_cfg)
        self.out = nn.Conv2d(channels, target_channels, 1)

    def forward(self, x: Tensor, size: Sequence[int]) -> Tensor:
        """(N, C_out, h, w) -> (N, C_in, H_in, W_in) with ``size`` (H_in,
        W_in)."""
        x = self.out(self.conv(self.reduce(x)))
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode='bilinear',
                              align_corners=self.align_corners)
        return x

    def loss(self, x: Tensor, target: Tensor, mask: Tensor) -> dict:
        """MSE against the module's input.

        Args:
            x: (N, C_out, h, w) module output.
            target: (N, C_in, H_in, W_in) module input (detached here).
            mask: (N, 1, H, W) 1 for real pixels, 0 for padding (image
                size), or None.

        Returns:
            dict with ``loss_recons`` (unweighted).
        """
        target = target.detach()
        pred = self(x, target.shape[-2:]).float()
        err = (pred - target.float())**2
        if mask is None:
            return dict(loss_recons=err.mean())
        if tuple(mask.shape[-2:]) != tuple(target.shape[-2:]):
            mask = F.interpolate(mask, size=target.shape[-2:],
                                 mode='nearest')
        mask = mask.to(err.dtype)
        denom = (mask.sum() * err.shape[1]).clamp(min=1.0)
        return dict(loss_recons=(err * mask).sum() / denom)
