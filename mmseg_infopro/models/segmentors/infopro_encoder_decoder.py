"""EncoderDecoder trained with InfoPro local supervision: the
segmentation half of the engine's protocol."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.structures import PixelData
from torch import Tensor

from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from ...engine.local_learning import LocalLearningModel
from ..heads.multi_level_task_head import fusion_style
from ..heads.recons_decoder import reconstruction_target


#: the lookahead a module gets by default (``lookahead=dict(type='auto')``,
#: the default) when it hands stage outputs to the final heads and its head
#: takes one: MAN's momentum copy of the next unit (issue 23's study,
#: docs/accuracy.md)
AUTO_LOOKAHEAD = dict(type='man', momentum=0.995)

#: the widest head-aware local head by default: it works at the finest
#: level (stride 4), where a copy of a 512-channel UPerHead would cost more
#: FLOPs and memory than the module it trains
MAX_FUSION_CHANNELS = 128


@MODELS.register_module()
class InfoProEncoderDecoder(LocalLearningModel, EncoderDecoder):
    """EncoderDecoder whose backbone is trained as K local modules.

    The backbone (any :class:`~mmseg_infopro.models.backbones.
    CuttableBackbone`: ``InfoProResNetV1c``, ``InfoProMixVisionTransformer``,
    ``InfoProSwinTransformer``, ...) is cut at ``split_points`` into K
    modules. :meth:`train_step` runs them one after the other: module
    ``k < K-1`` takes the previous output *detached*, computes its local loss
    (``local_heads[k]``), back-propagates it and frees its graph before
    module ``k+1`` runs; the last module (rest of the backbone, neck,
    decode and auxiliary heads) is trained by the usual losses. There is one
    optimizer step per iteration. Inference is EncoderDecoder's: local heads
    are used in training only. K=1 is EncoderDecoder exactly.

    Heads that read several stages (SegformerHead, UPerHead, FPN necks):
    the outputs of stages that end in an earlier module reach them
    *detached*. Nothing back-propagates across a cut: those stages are
    trained by their own module's local loss only, and the final loss
    trains the last module (and the heads themselves).

    Args:
        local_heads (dict | list[dict]): one ``InfoProLocalHead`` config per
            cut (a single dict is used for every cut). ``in_channels``,
            ``target_channels`` and ``num_classes`` are filled in from the
            cut and the decode head. At K=1 there is no local head and
            ``local_heads`` is ignored (a warning says so).
        **kwargs: EncoderDecoder's arguments.
    """

    local_head_registry = MODELS
    default_input_size = (512, 1024)

    def __init__(self, backbone: dict, decode_head: dict,
                 local_heads=None, **kwargs):
        super().__init__(backbone=backbone, decode_head=decode_head,
                         **kwargs)
        self.init_local_learning(local_heads)

    # ------------------------------------------- the engine's protocol
    def local_head_defaults(self) -> dict:
        """The local heads' classes and resizing, and how a head-aware one
        fuses (the neck's or decode head's family, see
        :data:`~mmseg_infopro.models.heads.FUSION_STYLES`) at which width
        (the decode head's ``channels``, at most
        :data:`MAX_FUSION_CHANNELS`)."""
        fuser = self.neck if self.with_neck else self.decode_head
        width = getattr(self.decode_head, 'channels', None)
        return dict(type='InfoProLocalHead', num_classes=self.num_classes,
                    align_corners=self.align_corners,
                    lookahead=dict(type='auto'),
                    fusion=fusion_style(type(fuser).__name__),
                    fusion_channels=None if width is None else
                    min(int(width), MAX_FUSION_CHANNELS))

    def default_lookahead(self, cfg: dict, has_levels: bool
                          ) -> Optional[dict]:
        """:data:`AUTO_LOOKAHEAD` for a module that hands stage outputs to
        the final heads (``has_levels``), if its head takes a default
        lookahead (``auto_lookahead``: not the paper's plain head)."""
        head = self.local_head_registry.get(cfg.get('type'))
        if not has_levels or not getattr(head, 'auto_lookahead', False):
            return None
        return dict(AUTO_LOOKAHEAD)

    def _reading_heads(self) -> List[nn.Module]:
        heads = [self.decode_head]
        if self.with_auxiliary_head:
            heads += list(self.auxiliary_head) if isinstance(
                self.auxiliary_head, nn.ModuleList) else [self.auxiliary_head]
        return heads

    def stage_channels(self) -> dict:
        """``{stage: channels}`` of the backbone outputs the neck (all of
        them) or the decode and auxiliary heads (their ``in_index``) read,
        from their ``in_channels``."""
        out_indices = list(self.backbone.out_indices)
        if self.with_neck:
            return dict(zip(out_indices, self.neck.in_channels))
        known = {}
        for head in self._reading_heads():
            index = getattr(head, 'in_index', None)
            channels = getattr(head, 'in_channels', None)
            if index is None or channels is None:
                continue
            if not isinstance(index, Sequence):
                index, channels = [index], [channels]
            elif not isinstance(channels, Sequence):
                continue  # resize_concat keeps only the sum of the widths
            for position, width in zip(index, channels):
                known[out_indices[position]] = int(width)
        return known

    def final_heads(self) -> List[nn.Module]:
        """Neck, decode head and auxiliary head(s): trained by the final
        loss, in the last module."""
        heads = [self.decode_head]
        if self.with_neck:
            heads.insert(0, self.neck)
        if self.with_auxiliary_head:
            heads.append(self.auxiliary_head)
        return heads

    def used_out_indices(self) -> Optional[set]:
        """Backbone stages (0-based, as ``out_indices``) whose outputs the
        final heads read; None means all (a neck reads everything)."""
        if self.with_neck:
            return None
        positions = set()
        for head in self._reading_heads():
            index = getattr(head, 'in_index', None)
            if index is None:
                return None
            positions.update(index if isinstance(index, Sequence) else
                             [index])
        out_indices = list(self.backbone.out_indices)
        return {out_indices[p] for p in positions}

    def final_losses(self, feats, data_samples: SampleList) -> dict:
        """Neck (if any), decode head and auxiliary head losses on the
        backbone outputs ``feats`` (``decode.*`` / ``aux.*`` keys)."""
        if self.with_neck:
            feats = self.neck(feats)
        losses = self._decode_head_forward_train(feats, data_samples)
        if self.with_auxiliary_head:
            losses.update(
                self._auxiliary_head_forward_train(feats, data_samples))
        return losses

    def local_targets(self, inputs: Tensor, data_samples: SampleList,
                      heads: Optional[Sequence[nn.Module]] = None
                      ) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        """``(gt, image, mask)`` for the local heads ``heads`` (default
        this model's): (N, H, W) labels, and the reconstruction target and
        padding mask (:func:`reconstruction_target`; image None when no
        head reconstructs the image)."""
        heads = self.local_heads if heads is None else heads
        gt = torch.stack([s.gt_sem_seg.data for s in data_samples
                          ]).squeeze(1).long()
        image, mask = reconstruction_target(
            inputs, data_samples, self.data_preprocessor,
            with_image=any(head.needs_image for head in heads))
        return gt, image, mask

    def example_batch(self, batch: int, size: Tuple[int, int],
                      seed: int = 0) -> dict:
        """:func:`synthetic_seg_batch` with this model's classes and
        ignore index."""
        return synthetic_seg_batch(batch, size, self.num_classes, seed,
                                   self.decode_head.ignore_index)


def synthetic_seg_batch(batch: int, size: Tuple[int, int], num_classes: int,
                        seed: int = 0, ignore_index: int = 255) -> dict:
    """A fabricated dataloader batch: ``dict(inputs=[uint8 (3, H, W)],
    data_samples=[SegDataSample])`` with random labels in
    ``0..num_classes-1`` and a band of ``ignore_index`` pixels.

    Under FakeTensorMode the tensors are fake (no memory, no values)."""
    from torch._guards import active_fake_mode

    from mmseg.structures import SegDataSample
    h, w = size
    gen = None
    if active_fake_mode() is None:
        gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch):
        img = torch.randint(0, 256, (3, h, w), generator=gen,
                            dtype=torch.uint8)
        gt = torch.randint(0, num_classes, (1, h, w), generator=gen)
        gt[:, :max(1, h // 32)] = ignore_index
        sample = SegDataSample(gt_sem_seg=PixelData(data=gt))
        sample.set_metainfo(
            dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        inputs.append(img)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)
