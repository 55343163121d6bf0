"""The geometric transforms of image classification training and testing.

Each reads ``results['img']`` (``(H, W, C)`` or ``(H, W)``, any dtype;
uint8 BGR from the readers and ``LoadImageFromFile``) and writes the new
``img`` and ``img_shape`` ``(h, w)``. Randomness comes from numpy's global
generator, as mmcv's transforms (mmengine seeds it per dataloader worker).

* :class:`RandomCropWithPadding`: the CIFAR crop (pad, random crop back).
* :class:`RandomResizedCropCls`: the Inception / torchvision crop.
* :class:`ResizeCenterCrop`: resize the short side, centre crop.
"""
import math
from numbers import Integral
from typing import Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmseg.registry import TRANSFORMS

SizeType = Union[int, Sequence[int]]

INTERPOLATIONS = dict(nearest=cv2.INTER_NEAREST, bilinear=cv2.INTER_LINEAR,
                      bicubic=cv2.INTER_CUBIC, area=cv2.INTER_AREA,
                      lanczos=cv2.INTER_LANCZOS4)


def to_hw(size: SizeType, name: str, owner: str) -> Tuple[int, int]:
    """``size`` (``int`` or ``(h, w)``) as a pair of positive ints."""
    pair = (size, size) if isinstance(size, Integral) else tuple(size)
    if len(pair) != 2 or not all(
            isinstance(v, Integral) and v > 0 for v in pair):
        raise ValueError(f'{owner}: {name} must be a positive int or (h, w) '
                         f'of positive ints, got {size!r}')
    return int(pair[0]), int(pair[1])


def interpolation_flag(name: str, owner: str) -> int:
    if name not in INTERPOLATIONS:
        raise ValueError(f'{owner}: interpolation must be one of '
                         f'{tuple(INTERPOLATIONS)}, got {name!r}')
    return INTERPOLATIONS[name]


def resize(img: np.ndarray, h: int, w: int, flag: int) -> np.ndarray:
    """``img`` resized to ``(h, w)`` with cv2 (keeps a trailing channel
    axis of size 1, which cv2 drops)."""
    out = cv2.resize(img, (w, h), interpolation=flag)
    return out[..., None] if img.ndim == 3 and out.ndim == 2 else out


@TRANSFORMS.register_module()
class RandomCropWithPadding(BaseTransform):
    """Pad ``padding`` pixels of ``pad_val`` on each side, then crop a
    random ``size`` window: the standard CIFAR / SVHN / STL-10 crop
    (``transforms.RandomCrop(32, padding=4)``). The output is the input
    shifted by ``-padding..padding`` pixels in each direction (when
    ``size`` is the input size), filled with ``pad_val``.

    Args:
        size (int | (h, w)): output size.
        padding (int): pixels added on each side (>= 0).
        pad_val (int | float | sequence): fill value (per channel if a
            sequence).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``.
    """

    def __init__(self, size: SizeType, padding: int = 4,
                 pad_val: Union[int, float, Sequence] = 0) -> None:
        self.size = to_hw(size, 'size', type(self).__name__)
        if not isinstance(padding, Integral) or padding < 0:
            raise ValueError(f'RandomCropWithPadding: padding must be an int '
                             f'>= 0, got {padding!r}')
        self.padding = int(padding)
        self.pad_val = pad_val

    def transform(self, results: dict) -> dict:
        img = results['img']
        p, (h, w) = self.padding, self.size
        height, width = img.shape[0] + 2 * p, img.shape[1] + 2 * p
        if h > height or w > width:
            raise ValueError(
                f'RandomCropWithPadding: cannot crop {self.size} from an '
                f'image of {img.shape[:2]} padded by {p} to '
                f'{(height, width)}')
        if p:
            padded = np.empty((height, width) + img.shape[2:], img.dtype)
            padded[...] = np.asarray(self.pad_val, dtype=img.dtype)
            padded[p:p + img.shape[0], p:p + img.shape[1]] = img
        else:
            padded = img
        top = np.random.randint(0, height - h + 1)
        left = np.random.randint(0, width - w + 1)
        results['img'] = np.ascontiguousarray(
            padded[top:top + h, left:left + w])
        results['img_shape'] = (h, w)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, '
                f'padding={self.padding}, pad_val={self.pad_val})')


@TRANSFORMS.register_module()
class RandomResizedCropCls(BaseTransform):
    """Crop a random area fraction and aspect ratio, resize to ``size``
    (Inception's crop, as ``torchvision.transforms.RandomResizedCrop``).

    Up to 10 tries draw an area ``U(scale) * H * W`` and an aspect ratio
    ``w / h`` log-uniform in ``ratio``; the first window that fits is
    used. If none fits: the whole image, centre-cropped to the nearest
    ratio in range.

    Args:
        size (int | (h, w)): output size (default 224).
        scale (float, float): range of the crop's area fraction.
        ratio (float, float): range of the crop's aspect ratio ``w / h``.
        interpolation (str): cv2 interpolation (default ``'bilinear'``).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``.
    """

    def __init__(self, size: SizeType = 224,
                 scale: Tuple[float, float] = (0.08, 1.0),
                 ratio: Tuple[float, float] = (3. / 4., 4. / 3.),
                 interpolation: str = 'bilinear',
                 max_attempts: int = 10) -> None:
        owner = type(self).__name__
        self.size = to_hw(size, 'size', owner)
        if not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f'{owner}: scale must be (min, max) with 0 < '
                             f'min <= max <= 1, got {scale!r}')
        if not (len(ratio) == 2 and 0 < ratio[0] <= ratio[1]):
            raise ValueError(f'{owner}: ratio must be (min, max) with 0 < '
                             f'min <= max, got {ratio!r}')
        self.scale = tuple(float(s) for s in scale)
        self.ratio = tuple(float(r) for r in ratio)
        self.interpolation = interpolation
        self.flag = interpolation_flag(interpolation, owner)
        self.max_attempts = max_attempts

    def crop_box(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """``(top, left, h, w)`` of the crop in a ``height x width``
        image."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(self.max_attempts):
            target = area * np.random.uniform(*self.scale)
            aspect = math.exp(np.random.uniform(*log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = np.random.randint(0, height - h + 1)
                left = np.random.randint(0, width - w + 1)
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def transform(self, results: dict) -> dict:
        img = results['img']
        top, left, h, w = self.crop_box(*img.shape[:2])
        crop = img[top:top + h, left:left + w]
        results['img'] = resize(crop, *self.size, self.flag)
        results['img_shape'] = self.size
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, '
                f'scale={self.scale}, ratio={self.ratio}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class ResizeCenterCrop(BaseTransform):
    """Resize the short side to ``resize_short`` (keeping the aspect
    ratio), then crop the centre ``size`` window: the standard ImageNet
    test transform (``Resize(256)`` + ``CenterCrop(224)``).

    Args:
        size (int | (h, w)): output size (default 224).
        resize_short (int): the short side after resizing (default 256;
            at least the crop's sides).
        interpolation (str): cv2 interpolation (default ``'bilinear'``).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``.
    """

    def __init__(self, size: SizeType = 224, resize_short: int = 256,
                 interpolation: str = 'bilinear') -> None:
        owner = type(self).__name__
        self.size = to_hw(size, 'size', owner)
        if not isinstance(resize_short, Integral) or \
                resize_short < max(self.size):
            raise ValueError(f'{owner}: resize_short must be an int >= the '
                             f'crop size {self.size}, got {resize_short!r}')
        self.resize_short = int(resize_short)
        self.interpolation = interpolation
        self.flag = interpolation_flag(interpolation, owner)

    def transform(self, results: dict) -> dict:
        img = results['img']
        height, width = img.shape[:2]
        short = self.resize_short
        if height <= width:
            new_h, new_w = short, int(short * width / height)
        else:
            new_h, new_w = int(short * height / width), short
        if (new_h, new_w) != (height, width):
            img = resize(img, new_h, new_w, self.flag)
        h, w = self.size
        top = int(round((new_h - h) / 2.0))
        left = int(round((new_w - w) / 2.0))
        results['img'] = np.ascontiguousarray(
            img[top:top + h, left:left + w])
        results['img_shape'] = self.size
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, '
                f'resize_short={self.resize_short}, '
                f'interpolation={self.interpolation!r})')
