"""Swin Transformer, cut-able."""
from typing import Dict, List, Optional, Tuple

from torch import Tensor

from mmseg.models.backbones import SwinTransformer
from mmseg.registry import MODELS
from .base import CuttableBackbone, Unit, to_map, to_tokens


@MODELS.register_module()
class InfoProSwinTransformer(CuttableBackbone, SwinTransformer):
    """mmseg's SwinTransformer cut into local modules.

    Units: ``'stem'`` (patch embedding, the absolute position embedding
    when ``use_abs_pos_embed``, dropout), then every Swin block ``(i, b)``.
    The last block of stage ``i`` (all stages but the last) also runs the
    stage's patch merging, so a cut before ``(i+1, 0)`` passes the merged
    map (stage ``i+1``'s channels and stride).

    Stage outputs: the stock model normalises the *pre-merge* tokens of
    stage ``i`` with ``norm{i}`` and returns them as NCHW. That norm is
    read only by the final heads, so it belongs to the last module
    (:meth:`output_parts`): the raw pre-merge map travels (detached when it
    comes from an earlier module) and :meth:`format_outputs` normalises it
    where the final loss can train the norm. Placed in the module that
    computed the stage, it would get no gradient at all (invariant 7 of
    docs/architecture.md).

    Args:
        split_points, checkpoint_blocks: see :class:`CuttableBackbone`,
            e.g. ``[(3, 9)]`` cuts Swin-B (2, 2, 18, 2 blocks) in the middle
            of its third stage.
        **kwargs: SwinTransformer's arguments.
    """
    plain_type = 'SwinTransformer'
    stage_output_is_unit_output = False  # patch merging follows

    def _stage_depths(self):
        return [len(stage.blocks) for stage in self.stages]

    def _has_stem(self) -> bool:
        return True

    def _unit_parts(self, unit: Unit):
        if unit == 'stem':
            parts = [self.patch_embed, self.drop_after_pos]
            if self.use_abs_pos_embed:
                parts.append(self.absolute_pos_embed)
            return parts
        stage, block = unit
        seq = self.stages[stage - 1]
        parts = [seq.blocks[block]]
        if block == len(seq.blocks) - 1 and seq.downsample is not None:
            parts.append(seq.downsample)
        return parts

    def _run_unit(self, unit: Unit, x: Tensor
                  ) -> Tuple[Tensor, Optional[Tensor]]:
        if unit == 'stem':
            x, hw_shape = self.patch_embed(x)
            if self.use_abs_pos_embed:
                x = x + self.absolute_pos_embed
            x = self.drop_after_pos(x)
            return to_map(x, hw_shape), None
        stage, block = unit
        seq = self.stages[stage - 1]
        x, hw_shape = to_tokens(x)
        x = seq.blocks[block](x, hw_shape)
        if block < len(seq.blocks) - 1:
            return to_map(x, hw_shape), None
        raw = to_map(x, hw_shape) if stage - 1 in self.out_indices else None
        if seq.downsample is not None:
            x, hw_shape = seq.downsample(x, hw_shape)
        return to_map(x, hw_shape), raw

    def _unit_out_channels(self, unit: Unit) -> int:
        if unit == 'stem':
            return self.num_features[0]
        stage, block = unit
        seq = self.stages[stage - 1]
        if block == len(seq.blocks) - 1 and seq.downsample is not None:
            return seq.downsample.out_channels
        return self.num_features[stage - 1]

    def output_parts(self) -> List:
        return [getattr(self, f'norm{i}') for i in self.out_indices]

    def format_outputs(self, outs: Dict[int, Tensor]) -> tuple:
        """``norm{i}`` and the NCHW layout of the stock forward."""
        feats = []
        for i in self.out_indices:
            raw = outs.get(i)
            if raw is None:
                feats.append(None)
                continue
            tokens, (h, w) = to_tokens(raw)
            out = getattr(self, f'norm{i}')(tokens)
            feats.append(
                out.view(-1, h, w, self.num_features[i]).permute(
                    0, 3, 1, 2).contiguous())
        return tuple(feats)
