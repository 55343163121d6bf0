from .image_classifier import ImageClassifier, LinearClsHead, topk_accuracy
from .infopro_image_classifier import (InfoProImageClassifier,
                                       synthetic_cls_batch)

__all__ = [
    'ImageClassifier', 'LinearClsHead', 'topk_accuracy',
    'InfoProImageClassifier', 'synthetic_cls_batch'
]
