"""The local loss of one non-final local module, for image classification.

The pieces of the InfoPro release's CIFAR/SVHN/STL-10 experiments
(``blackfeather-wang/InfoPro-Pytorch``, ``Experiments on CIFAR-SVHN-STL10``,
``networks/auxiliary_nets.py``, ``networks/losses.py``, ``comand.sh``):

* :class:`ImageReconsDecoder`: the reconstruction term (its ``Decoder``);
* :class:`AuxClassifier1c2f`: the task term's net (its ``'1c2f'`` aux net),
  trained with :class:`SupConLoss` (``'contrast'``) or cross-entropy
  (``'softmax'``, the release's ``'cross_entropy'``);
* :class:`AuxConvClassifier`: the ImageNet experiments' aux net
  (``Experiments on ImageNet/networks/resnet.py``, ``self.head``); their
  decoder is the segmentation one, :class:`ReconstructionDecoder`;
* :class:`InfoProClsLocalHead`: both, weighted;
* :func:`interpolated_weights` and :data:`RELEASE_LOSS_WEIGHTS`: the
  release's per-module weights.
"""
from types import MappingProxyType
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS

_DEFAULT_NORM = dict(type='BN', requires_grad=True)
_DEFAULTS = MappingProxyType({})  # the sub-net's own defaults

#: ``comand.sh``'s ``(ixx_1, ixy_1, ixx_2, ixy_2)``: ``{dataset: {table:
#: {depth: {K: (ixx_1, ixy_1, ixx_2, ixy_2)}}}}``. ``ixx`` weighs the
#: reconstruction loss, ``ixy`` the contrastive loss (all commands use
#: ``--local_loss_mode contrast --aux_net_config 1c2f
#: --aux_net_feature_dim 128``); ``_1`` is the first local module's,
#: ``_2`` the (K-1)-th's, see :func:`interpolated_weights`. ``table`` is
#: ``'even'`` (paper: InfoPro) or ``'balanced'`` (``--balanced_memory``,
#: paper: InfoPro*).
RELEASE_LOSS_WEIGHTS: Dict[str, dict] = {
    'cifar10': {
        'even': {
            32: {2: (5, 1, 0, 0), 4: (6, 0, 1, 2), 8: (5, 0, 0, 2),
                 16: (5, 0.05, 0.2, 0.5)},
            110: {2: (5, 0.5, 0, 0), 4: (1, 0, 0, 1), 8: (5, 0, 0, 1),
                  16: (5, 0, 0.5, 1)},
        },
        'balanced': {
            110: {2: (5, 0.1, 0, 0), 3: (5, 0, 5, 0.1), 4: (5, 0, 5, 0.1)},
        },
    },
    'stl10': {
        'even': {
            110: {2: (10, 1, 0, 0), 4: (20, 0.2, 5, 2), 8: (20, 0.2, 5, 1),
                  16: (20, 0.5, 10, 0.1)},
        },
        'balanced': {
            110: {2: (20, 1, 0, 0), 3: (20, 0.5, 5, 2), 4: (20, 0.5, 10, 1)},
        },
    },
    'svhn': {
        'even': {
            110: {2: (1, 0.1, 0, 0), 4: (5, 0, 0.5, 1), 8: (5, 0, 0.5, 2),
                  16: (5, 0.2, 0.5, 1)},
        },
    },
}


def release_loss_weights(dataset: str, depth: int, num_modules: int,
                         balanced: bool = False) -> Dict[str, float]:
    """The release's ``dict(ixx_1=, ixy_1=, ixx_2=, ixy_2=)`` for one run of
    ``comand.sh``; errors list what the release has."""
    if dataset not in RELEASE_LOSS_WEIGHTS:
        raise ValueError(f'the release has no loss weights for dataset '
                         f'{dataset!r}; it has {sorted(RELEASE_LOSS_WEIGHTS)}')
    table = 'balanced' if balanced else 'even'
    runs = RELEASE_LOSS_WEIGHTS[dataset].get(table, {}).get(depth, {})
    if num_modules not in runs:
        have = sorted((t, d, k)
                      for t, depths in RELEASE_LOSS_WEIGHTS[dataset].items()
                      for d, ks in depths.items() for k in ks)
        raise ValueError(
            f'the release has no loss weights for {dataset}, ResNet-{depth}, '
            f'K={num_modules}, {table} table; it has (table, depth, K) in '
            f'{have}')
    return dict(zip(('ixx_1', 'ixy_1', 'ixx_2', 'ixy_2'), runs[num_modules]))


def interpolated_weights(k: int, num_modules: int, first: Sequence[float],
                         last: Sequence[float]) -> Tuple[float, float]:
    """``(loss_recons_weight, loss_aux_weight)`` of local module ``k``.

    The release (``networks/resnet.py``, ``InfoProResNet.forward``) sets,
    for the non-final module ``k`` (0-based, ``0 <= k <= K-2``),
    ``ratio = k / (K - 2)`` (0 when K = 2) and ``w = first * (1 - ratio) +
    last * ratio``, for both weights: module 0 gets ``first``, module K-2
    ``last``, linearly in between. The final module (k = K-1) has the plain
    task loss and no local weights.

    Args:
        k: 0-based local module index, 0..K-2.
        num_modules: K >= 2.
        first: ``(ixx_1, ixy_1)``: (reconstruction, aux) weights of module 0.
        last: ``(ixx_2, ixy_2)``: those of module K-2 (unused when K = 2).
    """
    if isinstance(num_modules, bool) or not isinstance(num_modules, int) \
            or num_modules < 2:
        raise ValueError('interpolated_weights: num_modules must be an int '
                         f'>= 2 (K=1 has no local module), got {num_modules!r}')
    if isinstance(k, bool) or not isinstance(k, int) \
            or not 0 <= k <= num_modules - 2:
        raise ValueError(
            f'interpolated_weights: k must be a local module index in '
            f'0..{num_modules - 2} (module {num_modules - 1} is the final '
            f'one, without local weights), got {k!r}')
    if len(first) != 2 or len(last) != 2:
        raise ValueError('interpolated_weights: first and last are '
                         '(recons, aux) pairs, got '
                         f'{first!r}, {last!r}')
    ratio = k / (num_modules - 2) if num_modules > 2 else 0.0
    return tuple(float(a) * (1 - ratio) + float(b) * ratio
                 for a, b in zip(first, last))


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


#: the release's 1c2f conv per input width: ``{C: (conv channels, stride)}``
RELEASE_1C2F_CONV = {16: (32, 2), 32: (64, 2), 64: (64, 1)}


@MODELS.register_module()
class AuxClassifier1c2f(nn.Module):
    """The release's ``'1c2f'`` aux net: one conv block, two linear layers.

    3x3 conv C->``conv_channels`` (stride ``conv_stride``, no bias) -> norm
    -> ReLU -> global average pool -> linear -> ``hidden_dim`` -> ReLU ->
    linear -> ``num_classes`` (``mode='softmax'``: logits) or
    ``feature_dim`` (``mode='contrast'``: the embedding, L2-normalised).
    The release's widths (``aux_net_widen=1``): C=16 -> 32 channels stride
    2, C=32 -> 64 stride 2, C=64 -> 64 stride **1**; hidden 128; feature 128.
    Other widths need ``conv_channels`` and ``conv_stride``.

    Shapes: (N, C, H, W) -> (N, num_classes) or (N, feature_dim).
    """

    def __init__(self, in_channels: int, num_classes: int = 10,
                 mode: str = 'contrast',
                 conv_channels: Optional[int] = None,
                 conv_stride: Optional[int] = None,
                 hidden_dim: int = 128, feature_dim: int = 128,
                 norm_cfg: Optional[dict] = None):
        super().__init__()
        if mode not in ('contrast', 'softmax'):
            raise ValueError("AuxClassifier1c2f: mode must be 'contrast' or "
                             f"'softmax', got {mode!r}")
        if conv_channels is None or conv_stride is None:
            if in_channels not in RELEASE_1C2F_CONV:
                raise ValueError(
                    f'AuxClassifier1c2f: in_channels={in_channels} has no '
                    'release width (the release has in_channels in '
                    f'{sorted(RELEASE_1C2F_CONV)}): give conv_channels and '
                    'conv_stride')
            release = RELEASE_1C2F_CONV[in_channels]
            conv_channels = release[0] if conv_channels is None \
                else conv_channels
            conv_stride = release[1] if conv_stride is None else conv_stride
        self.mode = mode
        self.conv = nn.Conv2d(in_channels, conv_channels, 3, conv_stride, 1,
                              bias=False)
        self.norm = build_norm_layer(dict(norm_cfg or _DEFAULT_NORM),
                                     conv_channels)[1]
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(conv_channels, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim,
                             feature_dim if mode == 'contrast' else num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.norm(self.conv(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        x = self.fc2(F.relu(self.fc1(x)))
        return F.normalize(x, dim=1) if self.mode == 'contrast' else x


@MODELS.register_module()
class AuxConvClassifier(nn.Module):
    """The ImageNet release's aux net: a stack of conv -> norm -> ReLU
    blocks, global average pooling, one linear layer.

    Defaults are the release's for a ResNet cut inside layer2 (C=512,
    28x28): 1x1 C->128, 3x3 stride 2 ->256, 3x3 stride 2 ->512, 1x1
    ->2048, pool, linear -> ``num_classes`` (``mode='softmax'``) or
    ``feature_dim`` (``mode='contrast'``, L2-normalised).

    Shapes: (N, C, H, W) -> (N, num_classes) or (N, feature_dim).
    """

    def __init__(self, in_channels: int, num_classes: int = 1000,
                 mode: str = 'softmax',
                 channels: Sequence[int] = (128, 256, 512, 2048),
                 kernel_sizes: Sequence[int] = (1, 3, 3, 1),
                 strides: Sequence[int] = (1, 2, 2, 1),
                 feature_dim: int = 128,
                 norm_cfg: Optional[dict] = None):
        super().__init__()
        if mode not in ('contrast', 'softmax'):
            raise ValueError("AuxConvClassifier: mode must be 'contrast' or "
                             f"'softmax', got {mode!r}")
        if not len(channels) == len(kernel_sizes) == len(strides) >= 1:
            raise ValueError(
                'AuxConvClassifier: channels, kernel_sizes and strides must '
                f'have the same length >= 1, got {channels!r}, '
                f'{kernel_sizes!r}, {strides!r}')
        self.mode = mode
        layers, cin = [], in_channels
        for cout, k, stride in zip(channels, kernel_sizes, strides):
            layers += [
                nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
                build_norm_layer(dict(norm_cfg or _DEFAULT_NORM), cout)[1],
                nn.ReLU()
            ]
            cin = cout
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(cin,
                            feature_dim if mode == 'contrast' else num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.adaptive_avg_pool2d(self.convs(x), 1).flatten(1)
        x = self.fc(x)
        return F.normalize(x, dim=1) if self.mode == 'contrast' else x


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
        for name, value in (('loss_recons_weight', loss_recons_weight),
                            ('loss_aux_weight', loss_aux_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or value < 0:
                raise ValueError(f'InfoProClsLocalHead: {name} must be a '
                                 f'number >= 0, got {value!r}')
        norm_cfg = dict(norm_cfg or _DEFAULT_NORM)
        self.in_channels = in_channels
        self.aux_mode = aux_mode
        self.loss_recons_weight = float(loss_recons_weight)
        self.loss_aux_weight = float(loss_aux_weight)
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
