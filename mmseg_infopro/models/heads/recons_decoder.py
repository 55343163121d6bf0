"""The reconstruction half of a local loss: decode the input image."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor

from mmseg.registry import MODELS


@MODELS.register_module()
class ReconstructionDecoder(nn.Module):
    """Reconstructs the un-normalised RGB image in [0, 1] from features.

    1x1 conv C->channels[0] + norm + ReLU, then for each further entry of
    ``channels`` and finally for 3 output channels: bilinear x2 upsampling and
    a 3x3 conv (norm + ReLU after all but the last). With the default
    ``channels=(128, 32, 12)`` that is the paper's decoder for output stride 8:
    three x2 upsamplings. If the result still differs from the image size
    (another stride, odd sizes) it is resized bilinearly to it.

    The loss is binary cross-entropy between ``sigmoid(logits)`` and the
    image / 255, averaged over the pixels that are not padding; it is
    computed from the logits (``binary_cross_entropy_with_logits``), which is
    the same value and safe under autocast.
    """

    def __init__(self,
                 in_channels: int,
                 channels: Sequence[int] = (128, 32, 12),
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 align_corners: bool = False):
        super().__init__()
        if len(channels) < 1:
            raise ValueError('ReconstructionDecoder: channels must have at '
                             f'least one entry, got {channels!r}')
        self.align_corners = align_corners
        self.reduce = ConvModule(in_channels, channels[0], 1,
                                 norm_cfg=norm_cfg)
        outs = list(channels[1:]) + [3]
        ins = list(channels)
        self.up_convs = nn.ModuleList([
            ConvModule(
                cin, cout, 3, padding=1,
                norm_cfg=norm_cfg if i < len(outs) - 1 else None,
                act_cfg=dict(type='ReLU') if i < len(outs) - 1 else None)
            for i, (cin, cout) in enumerate(zip(ins, outs))
        ])

    def forward(self, x: Tensor, size: Optional[Sequence[int]] = None
                ) -> Tensor:
        """(N, C, h, w) -> (N, 3, H, W) logits (apply sigmoid for RGB/255)."""
        x = self.reduce(x)
        for conv in self.up_convs:
            x = F.interpolate(x, scale_factor=2, mode='bilinear',
                              align_corners=self.align_corners)
            x = conv(x)
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode='bilinear',
                              align_corners=self.align_corners)
        return x

    def loss(self, x: Tensor, target: Tensor, mask: Tensor) -> dict:
        """BCE against the image.

        Args:
            x: (N, C, h, w) features.
            target: (N, 3, H, W) un-normalised RGB / 255, in [0, 1].
            mask: (N, 1, H, W) 1 for real pixels, 0 for padding.

        Returns:
            dict with ``loss_recons`` (unweighted).
        """
        logits = self(x, target.shape[-2:]).float()
        bce = F.binary_cross_entropy_with_logits(
            logits, target.float(), reduction='none')
        mask = mask.to(bce.dtype)
        denom = (mask.sum() * bce.shape[1]).clamp(min=1.0)
        return dict(loss_recons=(bce * mask).sum() / denom)


def reconstruction_target(inputs: Tensor, data_samples, data_preprocessor,
                          with_image: bool = True) -> tuple:
    """Recover the raw image and the padding mask from a normalised batch.

    Args:
        inputs: (N, 3, H, W) batch after ``SegDataPreProcessor``
            (channel order as it outputs: RGB when ``bgr_to_rgb``).
        data_samples: their SegDataSamples (``padding_size`` metainfo, if
            any, is ``(left, right, top, bottom)``).
        data_preprocessor: the model's preprocessor (``mean``/``std``).
        with_image: False: return None for the image (only the mask is
            needed, e.g. by feature reconstruction).

    Returns:
        ``(target, mask)``: (N, 3, H, W) in [0, 1] (or None) and
        (N, 1, H, W), 1 for real pixels and 0 for padding.
    """
    target = None
    if with_image:
        raw = inputs.detach().float()
        if getattr(data_preprocessor, '_enable_normalize', False):
            raw = raw * data_preprocessor.std + data_preprocessor.mean
        target = (raw / 255.0).clamp_(0.0, 1.0)
    n, _, h, w = inputs.shape
    mask = torch.ones((n, 1, h, w), dtype=torch.float32,
                      device=inputs.device)
    for i, sample in enumerate(data_samples):
        pad = sample.metainfo.get('padding_size', None)
        if pad is None:
            continue
        left, right, top, bottom = (int(v) for v in pad)
        if right:
            mask[i, :, :, w - right:] = 0
        if bottom:
            mask[i, :, h - bottom:, :] = 0
        if left:
            mask[i, :, :, :left] = 0
        if top:
            mask[i, :, :top, :] = 0
    return target, mask
