"""The local loss of one non-final local module."""
from types import MappingProxyType
from typing import Mapping, Optional

from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS
from .feature_recons_decoder import FeatureReconstructionDecoder
from .local_task_head import LocalTaskHead
from .recons_decoder import ReconstructionDecoder

#: ``recons_target`` values and the decoder each one builds
RECONS_DECODERS = dict(image=ReconstructionDecoder,
                       features=FeatureReconstructionDecoder)
_DEFAULTS = MappingProxyType({})  # the sub-head's own defaults


def _check_weight(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or value < 0:
        raise ValueError(f'InfoProLocalHead: {name} must be a number >= 0, '
                         f'got {value!r}')
    return float(value)


@MODELS.register_module()
class InfoProLocalHead(BaseModule):
    """``loss_recons_weight * L_recons + loss_task_weight * L_task``.

    Two reconstruction targets, with the same weights:

    * ``recons_target='image'`` (default, the paper's): a small decoder
      (:class:`ReconstructionDecoder`) reconstructs the un-normalised image
      in [0, 1]; binary cross-entropy.
    * ``recons_target='features'``: a small decoder
      (:class:`FeatureReconstructionDecoder`) reconstructs the module's
      *input features* (the previous module's output; the normalised image
      for the first module); mean squared error. Pathak et al. (arXiv
      2212.14215) found this better than the image for Swin.

    Args:
        in_channels: channels of the local module's output. Filled in by
            :class:`InfoProEncoderDecoder` from the cut; if given, it must
            equal that value.
        num_classes: classes of the task head; defaults to the decode head's.
        target_channels: channels of the local module's input (filled in,
            used by ``recons_target='features'``).
        loss_recons_weight: lambda of the reconstruction loss (paper: 1.5
            for batch 8, 512x1024).
        loss_task_weight: lambda of the task loss (paper: 1).
        recons_target: ``'image'`` or ``'features'``, see above.
        task_head: kwargs of :class:`LocalTaskHead` (default: its defaults,
            the paper's 512 channels and dropout 0.1), or None for no task
            loss.
        recons_head: kwargs of the reconstruction decoder for
            ``recons_target`` (default: its defaults), or None for no
            reconstruction loss (then it is DGL's greedy local CE head).
        norm_cfg: normalisation layers of both heads.
        align_corners: for every resize in both heads.
    """

    def __init__(self,
                 in_channels: Optional[int] = None,
                 num_classes: Optional[int] = None,
                 target_channels: Optional[int] = None,
                 loss_recons_weight: float = 1.0,
                 loss_task_weight: float = 1.0,
                 recons_target: str = 'image',
                 task_head: Optional[Mapping] = _DEFAULTS,
                 recons_head: Optional[Mapping] = _DEFAULTS,
                 norm_cfg: Optional[Mapping] = None,
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
        if recons_target not in RECONS_DECODERS:
            raise ValueError(
                f'InfoProLocalHead: recons_target must be one of '
                f'{", ".join(map(repr, RECONS_DECODERS))}, got '
                f'{recons_target!r}')
        if recons_target == 'features' and recons_head is not None \
                and target_channels is None:
            raise ValueError(
                "InfoProLocalHead: recons_target='features' needs "
                'target_channels, the channels of the module input '
                '(InfoProEncoderDecoder fills it in)')
        norm_cfg = dict(norm_cfg or dict(type='BN', requires_grad=True))
        self.in_channels = in_channels
        self.recons_target = recons_target
        self.loss_recons_weight = _check_weight('loss_recons_weight',
                                                loss_recons_weight)
        self.loss_task_weight = _check_weight('loss_task_weight',
                                              loss_task_weight)
        self.task_head = None if task_head is None else LocalTaskHead(
            in_channels, num_classes, norm_cfg=norm_cfg,
            align_corners=align_corners, **dict(task_head))
        self.recons_head = None
        if recons_head is not None:
            decoder = RECONS_DECODERS[recons_target]
            extra = dict(target_channels=target_channels) \
                if recons_target == 'features' else {}
            self.recons_head = decoder(
                in_channels, norm_cfg=norm_cfg, align_corners=align_corners,
                **extra, **dict(recons_head))

    @property
    def needs_image(self) -> bool:
        """Whether :meth:`loss` needs the reconstruction target image."""
        return self.recons_head is not None and self.recons_target == 'image'

    @property
    def needs_inputs(self) -> bool:
        """Whether the loss reconstructs the module's input (its cost then
        depends on the input's shape)."""
        return self.recons_head is not None and \
            self.recons_target == 'features'

    def loss(self, x: Tensor, gt: Tensor, image: Optional[Tensor],
             mask: Optional[Tensor], inputs: Optional[Tensor] = None
             ) -> dict:
        """Weighted local losses.

        Args:
            x: (N, C, h, w) output of the local module.
            gt: (N, H, W) labels.
            image, mask: reconstruction target and padding mask, see
                :func:`reconstruction_target` (image unused unless
                ``recons_target='image'``).
            inputs: the module's (detached) input, the target of
                ``recons_target='features'``.

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
            target = image if self.recons_target == 'image' else inputs
            if target is None:
                raise ValueError(
                    f"InfoProLocalHead(recons_target='{self.recons_target}')"
                    '.loss needs ' + ('the image target' if self.recons_target ==
                                      'image' else 'inputs='))
            recons = self.recons_head.loss(x, target, mask)
            losses['loss_recons'] = \
                recons['loss_recons'] * self.loss_recons_weight
        return losses
