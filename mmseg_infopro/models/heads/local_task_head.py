"""The task half of a local loss: a small segmentation head."""
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor

from mmseg.models.losses import accuracy
from mmseg.registry import MODELS


@MODELS.register_module()
class LocalTaskHead(nn.Module):
    """3x3 conv C->channels + norm + ReLU + Dropout2d + 1x1 conv -> classes.

    Args:
        in_channels: channels of the local module's output.
        num_classes: number of classes (19 for Cityscapes).
        channels: hidden channels (512 in the paper).
        dropout_ratio: Dropout2d probability before the classifier.
        ignore_index: label ignored by the loss.
        norm_cfg: normalisation layer config.
        align_corners: for upsampling logits to the label size.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 channels: int = 512,
                 dropout_ratio: float = 0.1,
                 ignore_index: int = 255,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 align_corners: bool = False):
        super().__init__()
        self.conv = ConvModule(
            in_channels, channels, 3, padding=1, norm_cfg=norm_cfg)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 \
            else nn.Identity()
        self.cls_seg = nn.Conv2d(channels, num_classes, 1)
        self.ignore_index = ignore_index
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, h, w) features -> (N, num_classes, h, w) logits."""
        return self.cls_seg(self.dropout(self.conv(x)))

    def loss(self, x: Tensor, gt: Tensor) -> dict:
        """Pixel cross-entropy of logits upsampled to the label size.

        Args:
            x: (N, C, h, w) features.
            gt: (N, H, W) long labels, ``ignore_index`` ignored.

        Returns:
            dict with ``loss_task`` (unweighted mean over labelled
            pixels, 0 when there are none) and ``acc_seg``.
        """
        return pixel_loss(self(x), gt, self.ignore_index,
                          self.align_corners)


def pixel_loss(logits: Tensor, gt: Tensor, ignore_index: int = 255,
               align_corners: bool = False) -> dict:
    """``loss_task`` (pixel cross-entropy, mean over labelled pixels, 0
    when there are none) and ``acc_seg`` of (N, C, h, w) logits upsampled
    to the size of the (N, H, W) labels."""
    if tuple(logits.shape[-2:]) != tuple(gt.shape[-2:]):
        logits = F.interpolate(logits, size=gt.shape[-2:], mode='bilinear',
                               align_corners=align_corners)
    loss = F.cross_entropy(logits, gt, ignore_index=ignore_index,
                           reduction='sum')
    loss = loss / (gt != ignore_index).sum().clamp(min=1)
    return dict(loss_task=loss,
                acc_seg=accuracy(logits.detach(), gt,
                                 ignore_index=ignore_index))
