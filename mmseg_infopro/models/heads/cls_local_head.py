"""The local loss of one non-final local module, for image classification.

:class:`InfoProClsLocalHead` weighs the two terms of the InfoPro release's
CIFAR/SVHN/STL-10 experiments (``blackfeather-wang/InfoPro-Pytorch``,
``Experiments on CIFAR-SVHN-STL10``):

* the reconstruction term, :class:`ImageReconsDecoder`
  (:mod:`.cls_recons_decoder`);
* the task term, an aux net of :mod:`.cls_aux_net` trained with
  :class:`SupConLoss` (:mod:`.supcon_loss`) or cross-entropy.

The release's per-module weights are in :mod:`.cls_loss_weights`.
"""
from types import MappingProxyType
from typing import Mapping, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS
from .cls_aux_net import AuxClassifier1c2f
from .cls_recons_decoder import ImageReconsDecoder
from .loss_weight import check_loss_weight
from .supcon_loss import SupConLoss

_DEFAULT_NORM = dict(type='BN', requires_grad=True)
_DEFAULTS = MappingProxyType({})  # the sub-net's own defaults


@MODELS.register_module()
class InfoProClsLocalHead(BaseModule):
    """``loss_recons_weight * L_recons + loss_aux_weight * L_aux`` for one
    non-final local module of an image classifier.

    * L_recons: :class:`ImageReconsDecoder`, BCE against the un-normalised
      image in [0, 1].
    * L_aux: :class:`AuxClassifier1c2f`, with :class:`SupConLoss`
      (``aux_mode='contrast'``, the release's default) or softmax
      cross-entropy (``aux_mode='softmax'``).

    The release's weights per module are :func:`interpolated_weights` of
    :data:`RELEASE_LOSS_WEIGHTS`.

    Args:
        in_channels: channels of the local module's output (filled in from
            the cut by the classifier; a given value must match).
        num_classes: classes (softmax mode).
        loss_recons_weight: the release's ``ixx`` (>= 0).
        loss_aux_weight: the release's ``ixy`` (>= 0).
        aux_mode: ``'contrast'`` or ``'softmax'``.
        aux_head: kwargs of :class:`AuxClassifier1c2f` (default its
            defaults); with a ``type`` key, another registered aux net
            taking ``(in_channels, num_classes=, mode=, norm_cfg=)``, e.g.
            ``dict(type='AuxConvClassifier')`` (ImageNet); or None for no
            aux loss.
        recons_head: kwargs of :class:`ImageReconsDecoder`; with a
            ``type`` key another registered decoder with ``loss(x, image,
            mask)``, e.g. ``dict(type='ReconstructionDecoder')`` (ImageNet:
            the paper's x2 upsampling decoder); or None for no
            reconstruction loss (then it is a greedy supervised local
            head).
        temperature: of :class:`SupConLoss` (0.07).
        norm_cfg: normalisation layers of both nets.
        target_channels: accepted (the engine fills it in) and unused.
        lookahead: an auxiliary net built by the engine from
            ``lookahead=dict(type='auglocal' | 'man', ...)`` (see
            :mod:`mmseg_infopro.engine.lookahead`): the aux classifier reads
            its output; the decoder still reads the module's output.
    """

    def __init__(self,
                 in_channels: Optional[int] = None,
                 num_classes: Optional[int] = None,
                 loss_recons_weight: float = 1.0,
                 loss_aux_weight: float = 1.0,
                 aux_mode: str = 'contrast',
                 aux_head: Optional[Mapping] = _DEFAULTS,
                 recons_head: Optional[Mapping] = _DEFAULTS,
                 temperature: float = 0.07,
                 norm_cfg: Optional[Mapping] = None,
                 target_channels: Optional[int] = None,
                 lookahead: Optional[nn.Module] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if in_channels is None:
            raise ValueError('InfoProClsLocalHead needs in_channels (the '
                             'classifier fills it in from the cut)')
        if isinstance(lookahead, Mapping) or (lookahead is not None and
                                              aux_head is None):
            raise ValueError(
                'InfoProClsLocalHead: lookahead must be built by the model '
                'and needs an aux_head to feed')
        if aux_mode not in ('contrast', 'softmax'):
            raise ValueError("InfoProClsLocalHead: aux_mode must be "
                             f"'contrast' or 'softmax', got {aux_mode!r}")
        if aux_mode == 'softmax' and aux_head is not None \
                and num_classes is None:
            raise ValueError("InfoProClsLocalHead(aux_mode='softmax') needs "
                             'num_classes')
        if aux_head is None and recons_head is None:
            raise ValueError('InfoProClsLocalHead: aux_head and recons_head '
                             'are both None; a local module needs a loss')
        norm_cfg = dict(norm_cfg or _DEFAULT_NORM)
        self.in_channels = in_channels
        self.aux_mode = aux_mode
        self.loss_recons_weight = check_loss_weight(
            'InfoProClsLocalHead', 'loss_recons_weight', loss_recons_weight)
        self.loss_aux_weight = check_loss_weight(
            'InfoProClsLocalHead', 'loss_aux_weight', loss_aux_weight)
        self.lookahead = lookahead
        aux_in = in_channels if lookahead is None else \
            lookahead.out_channels
        self.aux_head = None if aux_head is None else _build_sub(
            aux_head, AuxClassifier1c2f, aux_in,
            num_classes=num_classes if num_classes is not None else 1,
            mode=aux_mode, norm_cfg=norm_cfg)
        self.recons_head = None if recons_head is None else _build_sub(
            recons_head, ImageReconsDecoder, in_channels, norm_cfg=norm_cfg)
        self.supcon = SupConLoss(temperature)

    @property
    def needs_image(self) -> bool:
        """Whether :meth:`loss` needs the reconstruction target image."""
        return self.recons_head is not None

    def loss(self, x: Tensor, labels: Tensor, image: Optional[Tensor] = None,
             mask: Optional[Tensor] = None, inputs: Optional[Tensor] = None
             ) -> dict:
        """Weighted local losses.

        Args:
            x: (N, C, h, w) output of the local module.
            labels: (N,) long class labels.
            image: (N, 3, H, W) un-normalised image in [0, 1] (needed when
                :attr:`needs_image`).
            mask: optional (N, 1, H, W), 1 for real pixels.
            inputs: the module's detached input (unused).

        Returns:
            dict: ``loss_aux`` (and ``acc_aux``, top-1 % of the aux
            classifier, in softmax mode) and/or ``loss_recons``, the losses
            already multiplied by their weights.
        """
        losses = {}
        if self.aux_head is not None:
            out = self.aux_head(
                x if self.lookahead is None else self.lookahead(x))
            if self.aux_mode == 'contrast':
                loss = self.supcon(out, labels)
            else:
                loss = F.cross_entropy(out.float(), labels)
                with torch.no_grad():
                    losses['acc_aux'] = (out.argmax(1) == labels).float(
                    ).mean() * 100
            losses['loss_aux'] = loss * self.loss_aux_weight
        if self.recons_head is not None:
            if image is None:
                raise ValueError('InfoProClsLocalHead.loss needs the image '
                                 'target (image=, (N, 3, H, W) in [0, 1])')
            recons = self.recons_head.loss(x, image, mask)
            losses['loss_recons'] = \
                recons['loss_recons'] * self.loss_recons_weight
        return losses


def _build_sub(cfg: Mapping, default: type, in_channels: int, **defaults):
    """A sub-net of :class:`InfoProClsLocalHead`: ``default(in_channels,
    **defaults, **cfg)``, or the registered ``cfg['type']`` likewise."""
    cfg = dict(cfg)
    cls = default
    if 'type' in cfg:
        name = cfg.pop('type')
        cls = MODELS.get(name) if isinstance(name, str) else name
        if cls is None:
            raise KeyError(f'InfoProClsLocalHead: no model type {name!r} is '
                           'registered in mmseg')
    for key, value in defaults.items():
        cfg.setdefault(key, value)
    return cls(in_channels, **cfg)
