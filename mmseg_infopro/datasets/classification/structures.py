"""The data sample of image classification.

mmpretrain has ``DataSample``, but mmpretrain imports torchvision, which
cannot be installed beside a CPU build of torch (docs/classification.md);
this is the small part of it the
classification pipeline, model and metric need.
"""
from numbers import Integral
from typing import Sequence, Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement

LabelType = Union[int, Sequence[int], np.ndarray, torch.Tensor]


def format_label(value: LabelType) -> torch.Tensor:
    """A label as a 1-D ``torch.long`` tensor: an ``int`` gives shape
    ``(1,)``; a sequence, array or tensor of integers is flattened."""
    if isinstance(value, torch.Tensor):
        label = value.reshape(-1)
        if label.is_floating_point() or label.is_complex():
            raise TypeError(f'gt_label must hold integers, got a tensor of '
                            f'{label.dtype}')
        return label.long()
    if isinstance(value, (Integral, np.integer)) and not isinstance(
            value, bool):
        return torch.tensor([int(value)], dtype=torch.long)
    array = np.asarray(value)
    if array.dtype.kind not in 'iu':
        raise TypeError(f'gt_label must be an int or integers, got '
                        f'{value!r} ({array.dtype})')
    return torch.from_numpy(array.astype(np.int64).reshape(-1))


def format_score(value: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
    """Class scores as a 1-D float tensor of shape ``(num_classes,)``."""
    score = torch.as_tensor(value)
    if score.dim() != 1:
        raise ValueError(f'pred_score must have shape (num_classes,), got '
                         f'{tuple(score.shape)}')
    return score if score.is_floating_point() else score.float()


class ClsDataSample(BaseDataElement):
    """One image's classification annotation and prediction.

    Data fields (each optional):

    * ``gt_label`` (``torch.LongTensor``, shape ``(1,)``): the class index.
      Assigning an ``int``, a numpy integer, a sequence or a tensor stores
      it in this form (``sample.gt_label = 3`` or ``set_gt_label(3)``).
    * ``pred_score`` (``torch.FloatTensor``, shape ``(num_classes,)``):
      the model's class scores (softmax probabilities by convention).

    Metainfo (set by :class:`PackClsInputs`): e.g. ``sample_idx``,
    ``img_path``, ``ori_shape``, ``img_shape``, ``flip``.

    ``to_dict()`` (what mmengine's ``Evaluator.process`` hands metrics)
    gives ``{'gt_label': tensor, 'pred_score': tensor, <metainfo>...}``.

    Examples:
        >>> sample = ClsDataSample(metainfo=dict(img_shape=(32, 32)))
        >>> sample.set_gt_label(3).gt_label
        tensor([3])
        >>> sample.set_pred_score(torch.rand(10)).pred_score.shape
        torch.Size([10])
    """

    def set_gt_label(self, value: LabelType) -> 'ClsDataSample':
        """Set ``gt_label`` (see the class docstring); returns ``self``."""
        self.gt_label = value
        return self

    def set_pred_score(self, value: Union[np.ndarray, torch.Tensor]
                       ) -> 'ClsDataSample':
        """Set ``pred_score`` (shape ``(num_classes,)``); returns
        ``self``."""
        self.pred_score = value
        return self

    @property
    def gt_label(self) -> torch.Tensor:
        return self._gt_label

    @gt_label.setter
    def gt_label(self, value: LabelType) -> None:
        self.set_field(format_label(value), '_gt_label', dtype=torch.Tensor)

    @gt_label.deleter
    def gt_label(self) -> None:
        del self._gt_label

    @property
    def pred_score(self) -> torch.Tensor:
        return self._pred_score

    @pred_score.setter
    def pred_score(self, value: Union[np.ndarray, torch.Tensor]) -> None:
        self.set_field(format_score(value), '_pred_score', dtype=torch.Tensor)

    @pred_score.deleter
    def pred_score(self) -> None:
        del self._pred_score
