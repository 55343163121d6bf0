"""The task term's aux nets of :class:`InfoProClsLocalHead`.

From the InfoPro release (``blackfeather-wang/InfoPro-Pytorch``):

* :class:`AuxClassifier1c2f`: the CIFAR/SVHN/STL-10 experiments' ``'1c2f'``
  aux net (``Experiments on CIFAR-SVHN-STL10/networks/auxiliary_nets.py``),
  trained with :class:`SupConLoss` (``'contrast'``) or cross-entropy
  (``'softmax'``, the release's ``'cross_entropy'``);
* :class:`AuxConvClassifier`: the ImageNet experiments' aux net
  (``Experiments on ImageNet/networks/resnet.py``, ``self.head``).

Both take ``(in_channels, num_classes=, mode=, norm_cfg=)`` and map (N, C,
H, W) -> (N, num_classes) logits (``mode='softmax'``) or an L2-normalised
(N, feature_dim) embedding (``mode='contrast'``).
"""
from typing import Optional, Sequence

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from torch import Tensor

from mmseg.registry import MODELS

_DEFAULT_NORM = dict(type='BN', requires_grad=True)

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
