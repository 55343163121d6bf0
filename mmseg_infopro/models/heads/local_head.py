"""The local loss of one non-final local module."""
from typing import Optional

from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS
from .local_task_head import LocalTaskHead
from .recons_decoder import ReconstructionDecoder


def _check_weight(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or value < 0:
        raise ValueError(f'InfoProLocalHead: {name} must be a number >= 0, '
                         f'got {value!r}')
    return float(value)


@MODELS.register_module()
class InfoProLocalHead(BaseModule):
    """``loss_recons_weight * L_recons + loss_task_weight * L_task``.

    Args:
        in_channels: channels of the local module's output. Filled in by
            :class:`InfoProEncoderDecoder` from the cut; if given, it must
            equal that value.
        num_classes: classes of the task head; defaults to the decode head's.
        loss_recons_weight: lambda of the reconstruction loss (paper: 1.5
            for batch 8, 512x1024).
        loss_task_weight: lambda of the task loss (paper: 1).
        task_head: kwargs of :class:`LocalTaskHead`, or None for no task
            loss.
        recons_head: kwargs of :class:`ReconstructionDecoder`, or None for
            no reconstruction loss (then it is DGL's greedy local CE head).
        norm_cfg: normalisation layers of both heads.
        align_corners: for every resize in both heads.
    """

    def __init__(self,
                 in_channels: Optional[int] = None,
                 num_classes: Optional[int] = None,
                 loss_recons_weight: float = 1.0,
                 loss_task_weight: float = 1.0,
                 task_head: Optional[dict] = dict(
                     channels=512, dropout_ratio=0.1),
                 recons_head: Optional[dict] = dict(channels=(128, 32, 12)),
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 align_corners: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if in_channels is None or num_classes is None:
            raise ValueError('InfoProLocalHead needs in_channels and '
                             'num_classes (InfoProEncoderDecoder fills them '
                             f'in), got {in_channels!r}, {num_classes!r}')
        if task_head is None and recons_head is None:
            raise ValueError('InfoProLocalHead: task_head and recons_head '
                             'are both None; a local module needs a loss')
        self.in_channels = in_channels
        self.loss_recons_weight = _check_weight('loss_recons_weight',
                                                loss_recons_weight)
        self.loss_task_weight = _check_weight('loss_task_weight',
                                              loss_task_weight)
        self.task_head = None if task_head is None else LocalTaskHead(
            in_channels, num_classes, norm_cfg=norm_cfg,
            align_corners=align_corners, **task_head)
        self.recons_head = None if recons_head is None else \
            ReconstructionDecoder(in_channels, norm_cfg=norm_cfg,
                                  align_corners=align_corners, **recons_head)

    @property
    def needs_image(self) -> bool:
        return self.recons_head is not None

    def loss(self, x: Tensor, gt: Tensor, image: Optional[Tensor],
             mask: Optional[Tensor]) -> dict:
        """Weighted local losses.

        Args:
            x: (N, C, h, w) output of the local module.
            gt: (N, H, W) labels.
            image, mask: reconstruction target and padding mask, see
                :func:`reconstruction_target` (unused without recons_head).

        Returns:
            dict: ``loss_task``, ``acc_seg`` and/or ``loss_recons``, the
            losses already multiplied by their weights.
        """
        losses = {}
        if self.task_head is not None:
            task = self.task_head.loss(x, gt)
            losses['loss_task'] = task['loss_task'] * self.loss_task_weight
            losses['acc_seg'] = task['acc_seg']
        if self.recons_head is not None:
            recons = self.recons_head.loss(x, image, mask)
            losses['loss_recons'] = \
                recons['loss_recons'] * self.loss_recons_weight
        return losses
