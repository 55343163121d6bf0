"""The local loss of one non-final local module."""
from types import MappingProxyType
from typing import Mapping, Optional, Sequence

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS
from .feature_recons_decoder import FeatureReconstructionDecoder
from .local_task_head import LocalTaskHead
from .loss_weight import check_loss_weight
from .multi_level_task_head import MultiLevelTaskHead
from .recons_decoder import ReconstructionDecoder

#: ``recons_target`` values and the decoder each one builds
RECONS_DECODERS = dict(image=ReconstructionDecoder,
                       features=FeatureReconstructionDecoder)
_DEFAULTS = MappingProxyType({})  # the sub-head's own defaults



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

    Head-aware task loss (``head_aware=True``): when the module produces
    stage outputs that the final heads read (SegformerHead, UPerHead and
    FPN necks read every stage), the task head reads all of them and the
    module's output (its *levels*), and fuses them the way the final head
    does (:class:`MultiLevelTaskHead`: each projected to a common width,
    resized to the finest, fused, classified at that resolution). So the
    early, high-resolution stages the final head reads detached are shaped
    by a pixel loss at their own resolution. A module with a single level
    keeps the plain task head, unless a lookahead (below) adds its output
    as a further, coarser level.

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
        head_aware: fuse the module's levels (see above).
        level_channels: channels of the module's levels, finest first
            (filled in by the engine for a module that produces stage
            outputs the final heads read; None: only the output).
        fusion: ``'concat'`` or ``'fpn'``, how the final head fuses
            (filled in from the decode head's type).
        fusion_channels: the head-aware task head's width when
            ``task_head`` sets no ``channels`` (filled in: the decode
            head's ``channels``).
        lookahead: the auxiliary net the task head reads through (a
            :class:`~mmseg_infopro.engine.lookahead.Lookahead`, built by the
            engine from ``lookahead=dict(type='auglocal' | 'man', ...)``);
            the task head then reads its output (as the last level, when
            head-aware) and the reconstruction still reads the module's
            output.
    """

    #: modules whose stages the final heads read get the model's default
    #: lookahead (``lookahead=dict(type='auto')``)
    auto_lookahead = True

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
                 head_aware: bool = True,
                 level_channels: Optional[Sequence[int]] = None,
                 fusion: str = 'concat',
                 fusion_channels: Optional[int] = None,
                 lookahead: Optional[nn.Module] = None,
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
        self.loss_recons_weight = check_loss_weight(
            'InfoProLocalHead', 'loss_recons_weight', loss_recons_weight)
        self.loss_task_weight = check_loss_weight(
            'InfoProLocalHead', 'loss_task_weight', loss_task_weight)
        levels = list(level_channels or [])
        if levels and levels[-1] != in_channels:
            raise ValueError(
                f'InfoProLocalHead: level_channels={levels} must end with '
                f'the module output\'s channels, in_channels={in_channels}')
        if isinstance(lookahead, Mapping):
            raise ValueError(
                'InfoProLocalHead: lookahead must be built by the model '
                '(LocalLearningModel.init_local_learning), got a config '
                f'{dict(lookahead)!r}')
        if lookahead is not None and task_head is None:
            raise ValueError('InfoProLocalHead: a lookahead feeds the task '
                             'head, but task_head is None')
        self.lookahead = lookahead
        task_in = in_channels
        if lookahead is not None:
            # the lookahead's output is one more (coarser) level
            task_in = lookahead.out_channels
            levels = levels + [task_in] if levels else []
        self.reads_levels = bool(head_aware) and len(levels) > 1 and \
            task_head is not None
        if task_head is None:
            self.task_head = None
        elif self.reads_levels:
            kwargs = dict(task_head)
            kwargs.setdefault('channels', fusion_channels or 256)
            self.task_head = MultiLevelTaskHead(
                levels, num_classes, fusion=fusion, norm_cfg=norm_cfg,
                align_corners=align_corners, **kwargs)
        else:
            self.task_head = LocalTaskHead(
                task_in, num_classes, norm_cfg=norm_cfg,
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
             mask: Optional[Tensor], inputs: Optional[Tensor] = None,
             levels: Optional[Sequence[Tensor]] = None) -> dict:
        """Weighted local losses.

        Args:
            x: (N, C, h, w) output of the local module.
            gt: (N, H, W) labels.
            image, mask: reconstruction target and padding mask, see
                :func:`reconstruction_target` (image unused unless
                ``recons_target='image'``).
            inputs: the module's (detached) input, the target of
                ``recons_target='features'``.
            levels: the module's levels (its stage outputs the final heads
                read, then ``x`` unless it is the last of them), read by a
                head-aware task head.

        Returns:
            dict: ``loss_task``, ``acc_seg`` and/or ``loss_recons``, the
            losses already multiplied by their weights.
        """
        losses = {}
        if self.task_head is not None:
            if self.lookahead is not None:
                ahead = self.lookahead(x)
                levels = list(levels or [x]) + [ahead]
                x_task = ahead
            else:
                x_task = x
            if self.reads_levels:
                if levels is None or len(levels) != len(
                        self.task_head.in_channels):
                    raise ValueError(
                        'InfoProLocalHead(head_aware=True).loss needs the '
                        f'{len(self.task_head.in_channels)} levels of its '
                        'module (levels=)')
                task = self.task_head.loss(levels, gt)
            else:
                task = self.task_head.loss(x_task, gt)
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


@MODELS.register_module()
class InfoProPaperLocalHead(InfoProLocalHead):
    """The paper's plain local head: the task head reads the module's last
    output only (``head_aware=False``) and there is no lookahead, whatever
    the defaults. ``local_heads=dict(type='InfoProPaperLocalHead', ...)``
    (the paper-reproduction configs use it)."""

    auto_lookahead = False

    def __init__(self, head_aware: bool = False, lookahead=None, **kwargs):
        if head_aware or lookahead is not None:
            raise ValueError(
                'InfoProPaperLocalHead is the paper\'s plain head: it takes '
                f'no head_aware (got {head_aware!r}) and no lookahead (got '
                f'{lookahead!r}); use InfoProLocalHead for those')
        super().__init__(head_aware=False, lookahead=None, **kwargs)
