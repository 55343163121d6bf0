"""The last transform of a classification pipeline: pack the image and
its label for the model."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmseg.registry import TRANSFORMS
from .structures import ClsDataSample


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """Pack ``results`` into ``dict(inputs=..., data_samples=...)``.

    * ``inputs``: ``results['img']`` (``(H, W, C)`` or ``(H, W)``, uint8
      BGR from the readers) as a contiguous ``(C, H, W)`` tensor of the
      same dtype (``C = 1`` for a 2-D image);
      mmengine's ``ImgDataPreprocessor`` stacks, converts and normalises.
    * ``data_samples``: a :class:`ClsDataSample` with ``gt_label``
      (``(1,)`` long) when ``results`` has ``gt_label``, and the
      ``meta_keys`` present in ``results`` as metainfo.

    Args:
        meta_keys (sequence of str): default ``('sample_idx', 'img_path',
            'ori_shape', 'img_shape', 'flip', 'flip_direction')``.
    """

    DEFAULT_META_KEYS = ('sample_idx', 'img_path', 'ori_shape', 'img_shape',
                         'flip', 'flip_direction')

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        if 'img' not in results:
            raise KeyError(
                'PackClsInputs: results have no "img" (keys: '
                f'{sorted(results)}); load the image first (an in-memory '
                'dataset or LoadImageFromFile).')
        img = np.asarray(results['img'])
        if img.ndim == 2:
            img = img[..., None]
        if img.ndim != 3:
            raise ValueError(f'PackClsInputs: img must be (H, W) or (H, W, '
                             f'C), got shape {img.shape}')
        inputs = torch.from_numpy(
            np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = ClsDataSample(metainfo={
            k: results[k]
            for k in self.meta_keys if k in results
        })
        if 'gt_label' in results:
            sample.set_gt_label(results['gt_label'])
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
