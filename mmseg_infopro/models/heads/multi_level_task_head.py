"""The task half of a head-aware local loss: every stage output a local
module hands to the final heads, fused the way the final head fuses them."""
from typing import Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor

from mmseg.registry import MODELS
from .local_task_head import pixel_loss

#: how a decode head (or neck) family fuses the stages it reads, by type
#: name. ``'concat'``: each level projected (1x1) to a common width,
#: resized to the finest, concatenated and fused by a 1x1 conv
#: (SegformerHead). ``'fpn'``: 1x1 laterals, top-down sums, a 3x3 conv per
#: level, resized to the finest, concatenated and fused by a 3x3 conv
#: (UPerHead, FPN necks). A family not listed fuses by ``'concat'``.
FUSION_STYLES: Dict[str, str] = dict(
    SegformerHead='concat',
    UPerHead='fpn',
    FPNHead='fpn',
    FPN='fpn',
)
FUSIONS = ('concat', 'fpn')


def fusion_style(type_name: str) -> str:
    """The fusion of a decode head or neck type (see
    :data:`FUSION_STYLES`)."""
    return FUSION_STYLES.get(str(type_name).split('.')[-1], 'concat')


def _resize(x: Tensor, size, align_corners: bool) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode='bilinear',
                         align_corners=align_corners)


@MODELS.register_module()
class MultiLevelTaskHead(nn.Module):
    """Classify the fused levels of a local module at the finest one's
    resolution.

    Args:
        in_channels: channels of each level, finest first (the module's
            stage outputs that the final heads read, in network order, then
            its output when that is not one of them).
        num_classes: classes.
        channels: the common width (the decode head's ``channels`` by
            default, see :class:`InfoProLocalHead`).
        fusion: ``'concat'`` or ``'fpn'`` (see :data:`FUSION_STYLES`).
        dropout_ratio: Dropout2d before the classifier.
        ignore_index: label ignored by the loss.
        norm_cfg: normalisation of every conv.
        align_corners: for every resize.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 num_classes: int,
                 channels: int = 256,
                 fusion: str = 'concat',
                 dropout_ratio: float = 0.1,
                 ignore_index: int = 255,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 align_corners: bool = False):
        super().__init__()
        in_channels = [int(c) for c in in_channels]
        if not in_channels:
            raise ValueError('MultiLevelTaskHead: in_channels is empty')
        if fusion not in FUSIONS:
            raise ValueError(f'MultiLevelTaskHead: fusion must be one of '
                             f'{FUSIONS}, got {fusion!r}')
        self.in_channels = in_channels
        self.fusion = fusion
        self.align_corners = align_corners
        self.ignore_index = ignore_index
        n = len(in_channels)
        self.lateral = nn.ModuleList(
            ConvModule(c, channels, 1, norm_cfg=norm_cfg)
            for c in in_channels)
        if fusion == 'fpn':
            self.smooth = nn.ModuleList(
                ConvModule(channels, channels, 3, padding=1,
                           norm_cfg=norm_cfg) for _ in range(n))
            self.fuse = ConvModule(n * channels, channels, 3, padding=1,
                                   norm_cfg=norm_cfg)
        else:
            self.smooth = None
            self.fuse = ConvModule(n * channels, channels, 1,
                                   norm_cfg=norm_cfg)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 \
            else nn.Identity()
        self.cls_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, levels: Sequence[Tensor]) -> Tensor:
        """Levels (finest first) -> (N, num_classes, h0, w0) logits at the
        finest level's resolution."""
        if len(levels) != len(self.lateral):
            raise ValueError(f'MultiLevelTaskHead: {len(levels)} levels '
                             f'given, built for {len(self.lateral)}')
        size = max((tuple(x.shape[-2:]) for x in levels),
                   key=lambda hw: hw[0] * hw[1])
        feats: List[Tensor] = [lat(x) for lat, x in zip(self.lateral, levels)]
        if self.smooth is not None:
            for i in range(len(feats) - 1, 0, -1):  # top-down, coarse first
                feats[i - 1] = feats[i - 1] + _resize(
                    feats[i], feats[i - 1].shape[-2:], self.align_corners)
            feats = [conv(f) for conv, f in zip(self.smooth, feats)]
        fused = self.fuse(torch.cat(
            [_resize(f, size, self.align_corners) for f in feats], dim=1))
        return self.cls_seg(self.dropout(fused))

    def loss(self, levels: Sequence[Tensor], gt: Tensor) -> dict:
        """Pixel cross-entropy of the logits upsampled to the label size,
        as :meth:`LocalTaskHead.loss` (mean over labelled pixels)."""
        return pixel_loss(self(levels), gt, self.ignore_index,
                          self.align_corners)
