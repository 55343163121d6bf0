"""The ResNet family, cut-able: ResNet, ResNetV1c, ResNetV1d, ResNeXt,
ResNeSt (one implementation of the contract for all of them)."""
from typing import List

import torch.nn as nn

from mmseg.models.backbones import (ResNeSt, ResNet, ResNetV1c, ResNetV1d,
                                    ResNeXt)
from mmseg.registry import MODELS
from .base import CuttableBackbone, ResLayerUnits, Unit


class CuttableResNetMixin(ResLayerUnits, CuttableBackbone):
    """The contract for any subclass of mmseg's ``ResNet``.

    Units: ``'stem'`` (``stem`` or ``conv1``/``norm1``/``relu``, then the
    max-pool) and every residual block ``(layer, block)`` of ``layer1`` ..
    ``layerN``. The raw output of a layer is its last block's output, which
    is what the stock ``forward`` returns.
    """

    def _stage_depths(self):
        return self.stage_blocks[:self.num_stages]

    def stem_modules(self) -> List[nn.Module]:
        if self.deep_stem:
            return [self.stem, self.maxpool]
        return [self.conv1, self.norm1, self.relu, self.maxpool]

    def _unit_out_channels(self, unit: Unit) -> int:
        if unit == 'stem':
            return self.stem_channels
        return self.base_channels * 2**(unit[0] - 1) * self.block.expansion


@MODELS.register_module()
class InfoProResNet(CuttableResNetMixin, ResNet):
    """mmseg's ResNet cut into local modules (see :class:`CuttableBackbone`
    for ``split_points`` and ``checkpoint_blocks``)."""
    plain_type = 'ResNet'


@MODELS.register_module()
class InfoProResNetV1c(CuttableResNetMixin, ResNetV1c):
    """mmseg's ResNetV1c cut into local modules. ``[(3, 13)]`` is the
    paper's K=2 for ResNet-101 (13 of the 23 blocks of layer3 in module 0).
    """
    plain_type = 'ResNetV1c'


@MODELS.register_module()
class InfoProResNetV1d(CuttableResNetMixin, ResNetV1d):
    """mmseg's ResNetV1d cut into local modules."""
    plain_type = 'ResNetV1d'


@MODELS.register_module()
class InfoProResNeXt(CuttableResNetMixin, ResNeXt):
    """mmseg's ResNeXt cut into local modules."""
    plain_type = 'ResNeXt'


@MODELS.register_module()
class InfoProResNeSt(CuttableResNetMixin, ResNeSt):
    """mmseg's ResNeSt cut into local modules."""
    plain_type = 'ResNeSt'
