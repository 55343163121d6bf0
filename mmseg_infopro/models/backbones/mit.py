"""SegFormer's Mix Vision Transformer, cut-able."""
from typing import Optional, Tuple

from torch import Tensor

from mmseg.models.backbones import MixVisionTransformer
from mmseg.registry import MODELS
from .base import CuttableBackbone, Unit, to_map, to_tokens


@MODELS.register_module()
class InfoProMixVisionTransformer(CuttableBackbone, MixVisionTransformer):
    """mmseg's MixVisionTransformer (SegFormer's MiT) cut into local modules.

    Stage ``i`` of the stock model is ``layers[i-1] = [patch_embed, blocks,
    norm]``. Units are the transformer blocks ``(i, b)``; block ``(i, 0)``
    also runs the stage's overlapping patch embedding (NCHW in, tokens
    out), the stage's last block also its norm and the reshape to NCHW, so
    every stage boundary is the stock NCHW map. A cut inside a stage passes
    the tokens as an NCHW view (``hw_shape`` is the map's size). No stem
    unit: the first module starts at block ``(1, 0)``.

    Args:
        split_points, checkpoint_blocks: see :class:`CuttableBackbone`,
            e.g. ``[(3, 20)]`` cuts MiT-B5 (3, 6, 40, 3 blocks) inside its
            third stage.
        **kwargs: MixVisionTransformer's arguments.
    """
    plain_type = 'MixVisionTransformer'

    def _stage_depths(self):
        return [len(layer[1]) for layer in self.layers]

    def _has_stem(self) -> bool:
        return False

    def _unit_parts(self, unit: Unit):
        stage, block = unit
        patch_embed, blocks, norm = self.layers[stage - 1]
        parts = [patch_embed] if block == 0 else []
        parts.append(blocks[block])
        if block == len(blocks) - 1:
            parts.append(norm)
        return parts

    def _run_unit(self, unit: Unit, x: Tensor
                  ) -> Tuple[Tensor, Optional[Tensor]]:
        stage, block = unit
        patch_embed, blocks, norm = self.layers[stage - 1]
        if block == 0:
            x, hw_shape = patch_embed(x)
        else:
            x, hw_shape = to_tokens(x)
        x = blocks[block](x, hw_shape)
        if block == len(blocks) - 1:
            x = to_map(norm(x), hw_shape)
            return x, x if stage - 1 in self.out_indices else None
        return to_map(x, hw_shape), None

    def _unit_out_channels(self, unit: Unit) -> int:
        return self.embed_dims * self.num_heads[unit[0] - 1]
