"""The CIFAR ResNet (He et al. 2016, section 4.2), plain and cut-able.

ResNet-(6n+2) for 32x32 / 96x96 images: a 3x3 conv stem (conv-BN-ReLU, no
max-pool, stride 1), then three stages of ``n`` basic blocks with 16, 32
and 64 channels; the first block of stages 2 and 3 has stride 2 and a
projection shortcut (1x1 conv stride 2 + BN), as in the InfoPro release
(``networks/resnet.py``, ``_make_layer``: a ``downsample`` of
``Conv2d(1x1, stride) + BatchNorm2d`` whenever the stride or the width
changes; not option A's zero padding). ResNet-32 is ``n=5``, ResNet-110
``n=18``. The classifier (global pool + linear) is not part of the
backbone: like mmseg backbones :class:`CifarResNet` returns a tuple of NCHW
stage outputs.

The InfoPro release (``blackfeather-wang/InfoPro-Pytorch``, folder
``Experiments on CIFAR-SVHN-STL10``) writes its cuts as ``[stage, block]``
pairs, ``[0, 0]`` being the stem; see :mod:`.cifar_splits` for their exact
meaning (:func:`release_to_split_points`) and its tables
(:data:`RELEASE_SPLITS`).
"""
import math
from typing import List, Mapping, Optional, Sequence

import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS
from .base import (CuttableBackbone, ResLayerUnits, SplitPoint, Unit,
                   _as_list, is_int, normalize_blocks)
from .cifar_splits import (cifar_stage_blocks, release_split_points,
                           release_to_split_points)


class CifarBasicBlock(nn.Module):
    """3x3 conv (stride) - norm - ReLU - [dropout] - 3x3 conv - norm, plus
    the shortcut (identity, or 1x1 conv stride + norm when the shape
    changes), then ReLU. (N, in_channels, H, W) -> (N, channels, H/s, W/s).
    ``with_cp``: recompute the block in backward (``torch.utils.checkpoint``)
    when its input requires grad, as mmseg's ResNet blocks.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 norm_cfg: Optional[dict] = None, dropout_rate: float = 0.0,
                 with_cp: bool = False):
        super().__init__()
        self.with_cp = with_cp
        norm_cfg = norm_cfg or dict(type='BN', requires_grad=True)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1,
                               bias=False)
        self.norm1 = build_norm_layer(norm_cfg, channels)[1]
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.norm2 = build_norm_layer(norm_cfg, channels)[1]
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else None
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                build_norm_layer(norm_cfg, channels)[1])

    def _inner(self, x: Tensor) -> Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.norm2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut

    def forward(self, x: Tensor) -> Tensor:
        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(self._inner, x, use_reentrant=False)
        else:
            out = self._inner(x)
        return self.relu(out)


@MODELS.register_module()
class CifarResNet(BaseModule):
    """ResNet-(6n+2) for small images (see the module doc).

    Args:
        depth: 6n+2, e.g. 20, 32, 44, 56, 110.
        in_channels: image channels (3).
        base_channels: channels of the stem and stage 1; stages 2 and 3
            double them (16 -> 16, 32, 64 as the release's
            ``wide_list=(16, 16, 32, 64)``).
        out_indices: 0-based stages whose outputs ``forward`` returns
            (default ``(2,)``, the last).
        norm_cfg: normalisation layers (default BN).
        dropout_rate: dropout between the two convs of every block (the
            release's ``--droprate``, 0 in all its commands).
        with_cp: gradient checkpointing of every block (as mmseg's
            ResNet: only where the block's input requires grad).
        init_cfg: mmengine init config; None keeps the release's init
            (conv: normal, std sqrt(2 / (k*k*out_channels)); norm: 1, 0).

    Shapes: (N, in_channels, H, W) -> tuple of (N, base*2^i, H/2^i, W/2^i)
    for ``i`` in ``out_indices``.
    """

    def __init__(self,
                 depth: int,
                 in_channels: int = 3,
                 base_channels: int = 16,
                 out_indices: Sequence[int] = (2,),
                 norm_cfg: Optional[dict] = None,
                 dropout_rate: float = 0.0,
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.depth = depth
        self.stage_blocks = cifar_stage_blocks(depth)
        out_indices = tuple(_as_list(out_indices))
        if not out_indices or any(not is_int(i) or not 0 <= i < 3
                                  for i in out_indices):
            raise ValueError('CifarResNet: out_indices must be stage '
                             f'indices in 0..2, got {out_indices!r}')
        self.out_indices = out_indices
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.stem_channels = base_channels
        self.norm_cfg = dict(norm_cfg or dict(type='BN', requires_grad=True))
        self.conv1 = nn.Conv2d(in_channels, base_channels, 3, 1, 1,
                               bias=False)
        self.norm1 = build_norm_layer(self.norm_cfg, base_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        self.res_layers = []
        channels_in = base_channels
        for i, num_blocks in enumerate(self.stage_blocks):
            channels = base_channels * 2**i
            blocks = [
                CifarBasicBlock(channels_in if b == 0 else channels,
                                channels, 2 if i > 0 and b == 0 else 1,
                                self.norm_cfg, dropout_rate, with_cp)
                for b in range(num_blocks)
            ]
            name = f'layer{i + 1}'
            self.add_module(name, nn.Sequential(*blocks))
            self.res_layers.append(name)
            channels_in = channels
        if init_cfg is None:
            self._release_init()

    def _release_init(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stage_channels(self, stage: int) -> int:
        """Channels of the 1-based ``stage``'s blocks."""
        return self.base_channels * 2**(stage - 1)

    def forward(self, x: Tensor) -> tuple:
        x = self.relu(self.norm1(self.conv1(x)))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


@MODELS.register_module()
class InfoProCifarResNet(ResLayerUnits, CuttableBackbone, CifarResNet):
    """:class:`CifarResNet` cut into local modules.

    Units: ``'stem'`` (conv1, norm1, relu) then ``(stage, block)`` for the
    blocks of ``layer1`` .. ``layer3`` (stage 1-based, block 0-based).

    ``split_points`` takes one of

    * ``[(stage, block), ...]``: cuts before those blocks (the contract's
      notation). Unlike the ImageNet families, ``(1, 0)`` is allowed: the
      stem is a trainable conv-BN, and the release's ResNet-32 K=16 split
      makes it a local module of its own (release ``[0, 0]``);
    * ``dict(release=[[stage, block], ...])``: the release's notation (a
      module ends *after* block ``block`` of stage ``stage``, ``[0, 0]``
      after the stem), see :func:`release_to_split_points`;
    * ``dict(table='even' | 'balanced', num_modules=K,
      dataset='cifar10')``: one of the release's published splits, see
      :func:`release_split_points` (``depth`` is the backbone's).

    E.g. ResNet-110, K=2: ``dict(release=[[2, 8]])`` == ``[(2, 9)]`` (the
    release's even split), ``dict(release=[[1, 14]])`` == ``[(1, 15)]``
    (its balanced split, InfoPro*).
    """
    plain_type = 'CifarResNet'

    def __init__(self, split_points=(), **kwargs):
        super().__init__(split_points=(), **kwargs)
        if isinstance(split_points, Mapping):
            split_points = self._from_release(dict(split_points))
        self.split_points = normalize_blocks(
            split_points, self.stage_blocks, 'split_points',
            first_allowed=True, stem=False)

    def _from_release(self, spec: dict) -> List[SplitPoint]:
        if set(spec) == {'release'}:
            return release_to_split_points(spec['release'], self.stage_blocks)
        if 'table' in spec and set(spec) <= {'table', 'num_modules',
                                             'dataset'}:
            if spec['table'] not in ('even', 'balanced') \
                    or 'num_modules' not in spec:
                raise ValueError(
                    "split_points=dict(table=...) needs table='even' or "
                    "'balanced' and num_modules=K, got " + repr(spec))
            return release_split_points(
                self.depth, spec['num_modules'],
                balanced=spec['table'] == 'balanced',
                dataset=spec.get('dataset', 'cifar10'))
        raise ValueError(
            'split_points as a dict must be dict(release=[[stage, block], '
            "...]) or dict(table='even'|'balanced', num_modules=K, "
            f"dataset='cifar10'|'stl10'), got {spec!r}")

    # ------------------------------------------------- family interface
    def _stage_depths(self):
        return self.stage_blocks

    def stem_modules(self) -> List[nn.Module]:
        return [self.conv1, self.norm1, self.relu]

    def _unit_out_channels(self, unit: Unit) -> int:
        if unit == 'stem':
            return self.stem_channels
        return self.stage_channels(unit[0])
