"""ImageClassifier trained with InfoPro local supervision: the
classification half of the engine's protocol."""
import logging
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor

from mmseg.registry import MODELS
from ...engine.local_learning import LocalLearningModel
from ..heads.cls_loss_weights import interpolated_weights
from ..heads.recons_decoder import reconstruction_target
from .image_classifier import ImageClassifier, gt_labels


@MODELS.register_module()
class InfoProImageClassifier(LocalLearningModel, ImageClassifier):
    """:class:`ImageClassifier` whose backbone is trained as K local
    modules (the engine's :class:`LocalLearningModel`).

    Module ``k < K-1`` is trained by its local head
    (:class:`InfoProClsLocalHead`: image reconstruction, BCE, plus an
    auxiliary ``1c2f`` classifier with the supervised contrastive or the
    softmax loss); the last module by the classification head's
    cross-entropy. K=1 is :class:`ImageClassifier` exactly.

    Args:
        backbone: a cut-able backbone config (``InfoProCifarResNet``,
            ``InfoProResNet``, ``InfoProResNeXt``, ...).
        head: the final head (``LinearClsHead``).
        local_heads (dict | list[dict]): one local head config per cut (a
            single dict for every cut); ``in_channels`` and
            ``num_classes`` are filled in. Switch the local loss with
            ``aux_mode='contrast'`` (default) or ``'softmax'``.
        local_loss_weights (dict, optional): the release's interpolated
            weights, ``dict(first=(recons, aux), last=(recons, aux))``:
            module 0 gets ``first``, module K-2 ``last``, linearly in
            between (:func:`interpolated_weights`); they override the
            weights in ``local_heads``.
        **kwargs: :class:`ImageClassifier`'s (``data_preprocessor``, ...).
    """

    local_head_registry = MODELS
    default_input_size = (32, 32)

    def __init__(self, backbone: dict, head: dict, local_heads=None,
                 local_loss_weights: Optional[dict] = None, **kwargs):
        super().__init__(backbone=backbone, head=head, **kwargs)
        self.init_local_learning(
            self._weighted_heads(local_heads, local_loss_weights))

    def _weighted_heads(self, local_heads, weights):
        num_modules = getattr(self.backbone, 'num_modules', 1)
        if weights is None or num_modules == 1:
            return local_heads
        if set(weights) != {'first', 'last'}:
            raise ValueError(
                'InfoProImageClassifier: local_loss_weights must be '
                'dict(first=(recons, aux), last=(recons, aux)), got '
                f'{weights!r}')
        cuts = num_modules - 1
        if isinstance(local_heads, dict) or local_heads is None:
            local_heads = [dict(local_heads or {})] * cuts
        if len(local_heads) != cuts:
            return local_heads  # init_local_learning names the mismatch
        out = []
        for k, cfg in enumerate(local_heads):
            recons, aux = interpolated_weights(k, num_modules,
                                               tuple(weights['first']),
                                               tuple(weights['last']))
            if recons == 0 and aux == 0:
                print_log(
                    f'InfoProImageClassifier: local_loss_weights={weights} '
                    f'gives local module {k} of {num_modules} the weights '
                    '(0, 0): its blocks and head are never trained. Give '
                    'weights for this K (the release\'s: mmseg_infopro.'
                    'models.heads.release_loss_weights)',
                    logger='current', level=logging.WARNING)
            out.append(dict(cfg, loss_recons_weight=recons,
                            loss_aux_weight=aux))
        return out

    # ------------------------------------------- the engine's protocol
    def local_head_defaults(self) -> dict:
        return dict(type='InfoProClsLocalHead', num_classes=self.num_classes)

    def final_heads(self) -> List[nn.Module]:
        return [self.head]

    def used_out_indices(self) -> Optional[set]:
        out_indices = list(getattr(self.backbone, 'out_indices', []))
        index = getattr(self.head, 'in_index', None)
        if index is None or not out_indices:
            return None
        return {out_indices[index]}

    def final_losses(self, feats, data_samples) -> dict:
        return self.head.loss(feats, gt_labels(data_samples))

    def local_targets(self, inputs: Tensor, data_samples,
                      heads: Optional[Sequence[nn.Module]] = None
                      ) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        """``(labels, image, mask)``: (N,) labels, the un-normalised image
        in [0, 1] (None when no head reconstructs it) and the padding
        mask (:func:`reconstruction_target`)."""
        heads = self.local_heads if heads is None else heads
        image, mask = reconstruction_target(
            inputs, data_samples, self.data_preprocessor,
            with_image=any(getattr(h, 'needs_image', False) for h in heads))
        return gt_labels(data_samples).to(inputs.device), image, mask

    def example_batch(self, batch: int, size: Tuple[int, int],
                      seed: int = 0) -> dict:
        """:func:`synthetic_cls_batch` with this model's classes."""
        return synthetic_cls_batch(batch, size, self.num_classes, seed)


def synthetic_cls_batch(batch: int, size: Tuple[int, int], num_classes: int,
                        seed: int = 0) -> dict:
    """A fabricated dataloader batch: ``dict(inputs=uint8 (N, 3, H, W),
    data_samples=[ClsDataSample])``, random images and labels (every class
    at least once when ``batch >= num_classes``). Fake tensors under
    FakeTensorMode.

    The images come stacked (``ImgDataPreprocessor`` takes a batch tensor
    as well as the dataloader's list; its list path computes the padding
    from tensor values, which FakeTensorMode cannot do)."""
    from torch._guards import active_fake_mode

    from ...datasets.classification.structures import ClsDataSample
    h, w = size
    gen = None
    if active_fake_mode() is None:
        gen = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, 256, (batch, 3, h, w), generator=gen,
                           dtype=torch.uint8)
    samples = []
    for i in range(batch):
        sample = ClsDataSample()
        sample.set_gt_label(i % num_classes)
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)
