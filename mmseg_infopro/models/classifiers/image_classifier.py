"""A plain image classifier (backbone -> global pooling -> linear), the
end-to-end model that :class:`InfoProImageClassifier` trains locally.

mmpretrain has one, but it imports torchvision, which cannot be installed
beside a CPU build of torch from the registry (docs/classification.md);
this is the
small part of it the InfoPro release needs.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel, BaseModule
from torch import Tensor

from mmseg.registry import MODELS


@MODELS.register_module()
class LinearClsHead(BaseModule):
    """Global average pooling, then one linear layer; cross-entropy loss.

    Args:
        num_classes: classes.
        in_channels: channels of the feature map it reads.
        in_index: which backbone output it reads (default the last).
        loss_weight: weight of the cross-entropy (key ``loss_ce``).
        topk: accuracies logged with the loss (``acc_top1``, ...).
    """

    def __init__(self, num_classes: int, in_channels: int,
                 in_index: int = -1, loss_weight: float = 1.0,
                 topk: Sequence[int] = (1, ), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1:
            raise ValueError(f'LinearClsHead: num_classes must be >= 1, got '
                             f'{num_classes}')
        self.num_classes = num_classes
        self.in_index = in_index
        self.loss_weight = loss_weight
        self.topk = tuple(topk)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """``(N, num_classes)`` logits from the backbone outputs."""
        x = feats[self.in_index]
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def loss(self, feats: Sequence[Tensor], labels: Tensor) -> dict:
        logits = self(feats)
        losses = dict(loss_ce=self.loss_weight *
                      F.cross_entropy(logits, labels))
        with torch.no_grad():
            for k in self.topk:
                losses[f'acc_top{k}'] = topk_accuracy(logits, labels, k)
        return losses


def topk_accuracy(logits: Tensor, labels: Tensor, k: int) -> Tensor:
    """Percentage of rows whose label is among the ``k`` largest logits
    (k clipped to the number of classes)."""
    k = min(k, logits.shape[1])
    hit = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return hit.float().mean() * 100.0


def gt_labels(data_samples) -> Tensor:
    """``(N,)`` long labels from data samples with ``gt_label``."""
    return torch.cat([torch.as_tensor(s.gt_label).reshape(-1)[:1]
                      for s in data_samples]).long()


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """``head(neck(backbone(x)))`` for image classification, an mmengine
    model (``forward(inputs, data_samples, mode)`` with ``'tensor'``,
    ``'loss'`` and ``'predict'``).

    Args:
        backbone: an mmseg backbone config (returns a tuple of NCHW maps).
        head: the head config (default :class:`LinearClsHead`).
        data_preprocessor: default mmengine's ``ImgDataPreprocessor``
            (normalisation, BGR -> RGB).
        pretrained: a checkpoint for the backbone (as mmseg's segmentors).
    """

    def __init__(self, backbone: dict, head: dict,
                 data_preprocessor: Optional[dict] = None,
                 pretrained: Optional[str] = None, init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='ImgDataPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if pretrained is not None:
            backbone = dict(backbone, init_cfg=dict(type='Pretrained',
                                                    checkpoint=pretrained))
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)
        self.num_classes = self.head.num_classes

    def extract_feat(self, inputs: Tensor) -> tuple:
        return tuple(self.backbone(inputs))

    def forward(self, inputs: Tensor, data_samples=None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self.head(self.extract_feat(inputs))
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got "
                         f'{mode!r}')

    def loss(self, inputs: Tensor, data_samples) -> dict:
        return self.head.loss(self.extract_feat(inputs),
                              gt_labels(data_samples))

    def predict(self, inputs: Tensor, data_samples=None) -> List:
        """The data samples with ``pred_score`` (softmax, ``(C,)``) and
        ``pred_label`` set (new ones when none are given)."""
        scores = F.softmax(self.head(self.extract_feat(inputs)), dim=1)
        if data_samples is None:
            from mmengine.structures import BaseDataElement
            data_samples = [BaseDataElement() for _ in range(len(scores))]
        for sample, score in zip(data_samples, scores):
            sample.set_field(score.detach(), 'pred_score')
            sample.set_field(score.argmax().reshape(1).detach(),
                             'pred_label')
        return list(data_samples)
