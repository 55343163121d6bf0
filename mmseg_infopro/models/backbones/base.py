"""Helpers the backbone families share, and the backbone contract they
implement (:mod:`mmseg_infopro.engine.backbone_contract`, re-exported here
for the families and for ``from mmseg_infopro.models.backbones.base
import CuttableBackbone``)."""
from typing import List, Optional, Sequence, Tuple

import torch.nn as nn
from torch import Tensor

from ...engine.backbone_contract import (  # noqa: F401
    INFOPRO_TWINS, SAVED_OPS, CuttableBackbone, SplitPoint, Unit, _as_list,
    cuttable_hint, is_int, normalize_blocks, normalize_split_points,
    selective_checkpoint)


# ------------------------------------------------------- NCHW <-> tokens
def to_tokens(x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
    """NCHW map -> ``(tokens (N, H*W, C), (H, W))``; a view when ``x`` came
    from :func:`to_map` (or is channels-last), as mmseg's nchw_to_nlc."""
    return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


def to_map(x: Tensor, hw_shape: Sequence[int]) -> Tensor:
    """Tokens ``(N, H*W, C)`` -> NCHW view, as mmseg's ``nlc_to_nchw``."""
    n, length, c = x.shape
    h, w = hw_shape
    assert length == h * w, f'{length} tokens for a {h}x{w} map'
    return x.transpose(1, 2).reshape(n, c, h, w)


class ResLayerUnits:
    """The units of a ResNet-like family (mmseg's ResNets, the CIFAR
    ResNet): a stem (:meth:`stem_modules`, run in order), then the residual
    blocks of the layers named in ``self.res_layers``; a block that ends a
    stage in ``out_indices`` also returns its output as the raw stage
    output. Put it before :class:`CuttableBackbone` in the bases."""

    def _has_stem(self) -> bool:
        return True

    def stem_modules(self) -> List[nn.Module]:
        raise NotImplementedError

    def get_block(self, stage: int, block: int) -> nn.Module:
        return getattr(self, self.res_layers[stage - 1])[block]

    def _unit_parts(self, unit: Unit):
        if unit == 'stem':
            return self.stem_modules()
        return [self.get_block(*unit)]

    def _run_unit(self, unit: Unit, x: Tensor
                  ) -> Tuple[Tensor, Optional[Tensor]]:
        if unit == 'stem':
            for m in self.stem_modules():
                x = m(x)
            return x, None
        stage, block = unit
        x = self.get_block(stage, block)(x)
        ends = block == self.stage_blocks[stage - 1] - 1
        return x, x if ends and stage - 1 in self.out_indices else None
