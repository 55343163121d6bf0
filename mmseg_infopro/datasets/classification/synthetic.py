"""Small generated classification datasets in the official file formats,
for tests and the demo: CIFAR-10 / CIFAR-100 python pickles, SVHN
``.mat``, STL-10 ``.bin`` and ImageNet-style class folders.

The images are *learnable*: class ``c`` shows stripes at the angle
``180 * c / 10`` degrees (of random phase and period) in a colour near the
hue ``c / 10``, over a random background colour, plus noise; a small
ResNet learns them in a few hundred iterations, while the mean colour
alone separates them only partly. ``difficulty`` (0 by default: exactly
those images) makes the classes overlap, so that accuracy does not
saturate: see :func:`class_pattern_images`.

Every writer takes RGB images ``(N, H, W, 3)`` uint8 and labels ``(N,)``
``0..C-1`` and writes them the way the official files store them; the
readers give them back as BGR.
"""
import os
import os.path as osp
import pickle
from typing import Sequence, Tuple, Union

import cv2
import numpy as np

from .stl10 import STL10_CLASSES, STL10_SIZE

CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog',
                   'frog', 'horse', 'ship', 'truck')


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(N,)`` hue, saturation, value in ``[0, 1]`` to ``(N, 3)`` RGB in
    ``[0, 1]``."""
    h6 = (h % 1.0) * 6.0
    i = np.floor(h6).astype(int) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack([
        np.stack([v, t, p], 1), np.stack([q, v, p], 1),
        np.stack([p, v, t], 1), np.stack([p, q, v], 1),
        np.stack([t, p, v], 1), np.stack([v, p, q], 1)
    ])
    return table[i, np.arange(len(h))]


#: at ``difficulty=1``: the extra standard deviation of the stripe angle,
#: in units of the angle between two neighbouring classes (``pi / C``)
DIFFICULTY_ANGLE_JITTER = 0.35
#: ... the extra standard deviation of the hue (neighbouring classes are
#: ``1 / C`` apart)
DIFFICULTY_HUE_JITTER = 0.6
#: ... the probability that the colour carries no class cue (a random hue)
DIFFICULTY_RANDOM_HUE = 0.5
#: ... the lowest stripe contrast (drawn in ``[1 - this, 1]``)
DIFFICULTY_LOW_CONTRAST = 0.6
#: ... the largest amplitude of the distractor stripes (random angle,
#: period and phase), relative to full contrast
DIFFICULTY_DISTRACTOR = 0.9
#: ... the extra standard deviation of the pixel noise (0..255 scale)
DIFFICULTY_NOISE = 30.0


def class_pattern_images(labels: np.ndarray,
                         size: Union[int, Tuple[int, int]],
                         rng: np.random.Generator,
                         num_classes: int = 10,
                         noise: float = 20.0,
                         difficulty: float = 0.0) -> np.ndarray:
    """Learnable images of the classes ``labels`` (see the module
    docstring): ``(N, H, W, 3)`` uint8 **RGB**.

    ``size`` is ``S`` (square) or ``(H, W)``. The class's stripe angle is
    ``pi * c / num_classes`` and its hue ``c / num_classes``; ``noise`` is
    the standard deviation of the Gaussian pixel noise (0..255).

    ``difficulty`` in ``[0, 1]`` weakens and blurs the class cues, linearly
    (the ``DIFFICULTY_*`` constants give the values at 1): stripe angles
    and hues jitter into the neighbouring classes', the colour of some
    images is random (no colour cue), the class stripes get a lower
    contrast, stripes of a random angle are added over them (distractors,
    sometimes stronger than the class's own) and the pixel noise grows.
    At ``difficulty=1`` some images are ambiguous, so even a perfect
    classifier stays below 100%. ``difficulty=0`` (default) draws nothing
    more from ``rng``: the images are exactly those of earlier versions.
    """
    if isinstance(difficulty, bool) or \
            not isinstance(difficulty, (int, float)) or \
            not 0.0 <= difficulty <= 1.0:
        raise ValueError(f'class_pattern_images: difficulty must be a number '
                         f'in [0, 1], got {difficulty!r}')
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) \
            or noise < 0:
        raise ValueError(f'class_pattern_images: noise must be a number '
                         f'>= 0, got {noise!r}')
    h, w = (size, size) if isinstance(size, int) else size
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    scale = max(h, w)
    # the draws of difficulty 0, in their historical order
    angle_noise = rng.normal(0, 0.04, n)
    period = scale / rng.uniform(2.5, 4.5, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    hue = labels / num_classes + rng.normal(0, 0.02, n)
    sat, val = rng.uniform(0.6, 1.0, n), rng.uniform(0.7, 1.0, n)
    bg = rng.uniform(0.0, 0.6, (n, 3))
    stripes = _stripes(xs, ys, np.pi * labels / num_classes + angle_noise,
                       period, phase)
    if difficulty > 0:
        d = float(difficulty)
        angle = np.pi * labels / num_classes + angle_noise + rng.normal(
            0, d * DIFFICULTY_ANGLE_JITTER * np.pi / num_classes, n)
        hue = hue + rng.normal(0, d * DIFFICULTY_HUE_JITTER / num_classes, n)
        no_cue = rng.random(n) < d * DIFFICULTY_RANDOM_HUE
        hue = np.where(no_cue, rng.uniform(0, 1, n), hue)
        contrast = rng.uniform(1 - d * DIFFICULTY_LOW_CONTRAST, 1.0, n)
        amplitude = rng.uniform(0, d * DIFFICULTY_DISTRACTOR, n)
        distractor = _stripes(xs, ys, rng.uniform(0, np.pi, n),
                              scale / rng.uniform(1.5, 5.0, n),
                              rng.uniform(0, 2 * np.pi, n))
        # both around 0.5: the class stripes at ``contrast``, the
        # distractor at ``amplitude``, the sum kept in [0, 1]
        stripes = 0.5 + (
            contrast[:, None, None] * (_stripes_centered(xs, ys, angle,
                                                         period, phase)) +
            amplitude[:, None, None] * (distractor - 0.5)) / (
                1 + amplitude[:, None, None])
        noise = noise + d * DIFFICULTY_NOISE
    fg = _hsv_to_rgb(hue, sat, val)
    img = (bg[:, None, None] + (fg - bg)[:, None, None] *
           stripes[..., None]) * 255.0
    img += rng.normal(0, noise, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _stripes(xs: np.ndarray, ys: np.ndarray, angle: np.ndarray,
             period: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` sinusoidal stripes in ``[0, 1]``: one angle, period
    and phase ``(N,)`` per image over the pixel grid ``xs``, ``ys``."""
    return 0.5 + _stripes_centered(xs, ys, angle, period, phase)


def _stripes_centered(xs, ys, angle, period, phase) -> np.ndarray:
    """:func:`_stripes` minus 0.5: in ``[-0.5, 0.5]``."""
    proj = (xs[None] * np.cos(angle)[:, None, None] +
            ys[None] * np.sin(angle)[:, None, None])
    return 0.5 * np.sin(2 * np.pi * proj / period[:, None, None] +
                        phase[:, None, None])


def balanced_labels(per_class: int, num_classes: int,
                    rng: np.random.Generator) -> np.ndarray:
    """``per_class`` labels of each class, shuffled: ``(N,)`` int64."""
    labels = np.repeat(np.arange(num_classes), per_class)
    return rng.permutation(labels).astype(np.int64)


# ---------------------------------------------------------------- CIFAR


def write_cifar_pickle(path: str, entry: dict) -> None:
    """Pickle ``entry`` like the official files (written by Python 2):
    ``str`` keys and ``str`` values (also in lists) become ``bytes``;
    protocol 2."""

    def to_bytes(value):
        if isinstance(value, str):
            return value.encode('utf-8')
        if isinstance(value, (list, tuple)):
            return [to_bytes(v) for v in value]
        return value

    with open(path, 'wb') as f:
        pickle.dump({to_bytes(k): to_bytes(v)
                     for k, v in entry.items()}, f, protocol=2)


def rgb_to_cifar_rows(images: np.ndarray) -> np.ndarray:
    """``(N, S, S, 3)`` uint8 RGB to ``(N, 3*S*S)`` CIFAR rows (the R, G,
    B planes, each row-major)."""
    images = np.asarray(images, dtype=np.uint8)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(
        len(images), -1)


def write_cifar_batch(path: str, images: np.ndarray, labels: np.ndarray,
                      labels_key: str = 'labels',
                      batch_label: str = 'synthetic batch') -> None:
    """One CIFAR python batch: ``data`` ``(N, 3*S*S)`` uint8 rows from RGB
    ``images`` and ``labels_key`` (``'labels'``, or ``'fine_labels'`` for
    CIFAR-100) a list of ints."""
    write_cifar_pickle(path, {
        'batch_label': batch_label,
        labels_key: [int(v) for v in labels],
        'data': rgb_to_cifar_rows(images),
        'filenames': [f'synthetic_{i:06d}.png' for i in range(len(labels))],
    })


def make_synthetic_cifar10(root: str,
                           train_per_class: int = 100,
                           test_per_class: int = 20,
                           seed: int = 0,
                           image_size: int = 32,
                           difficulty: float = 0.0,
                           noise: float = 20.0) -> str:
    """Write a CIFAR-10-format dataset to ``root/cifar-10-batches-py/``:
    ``data_batch_1`` .. ``data_batch_5`` (``10 * train_per_class``
    images, shuffled, split evenly), ``test_batch`` (``10 *
    test_per_class``) and ``batches.meta`` (the CIFAR-10 class names), as
    the official archive. ``CIFAR10Dataset(data_root=root)`` reads it
    (pass the same ``image_size`` when it is not 32).

    ``difficulty`` (``[0, 1]``) and ``noise`` (pixel noise std, 0..255)
    go to :func:`class_pattern_images`: the defaults give an easy set, a
    ``difficulty`` near 1 one on which accuracy does not saturate (for
    comparing training methods; docs/accuracy.md says how a small ResNet
    fares on each).

    Returns:
        str: the ``cifar-10-batches-py`` folder.
    """
    if train_per_class < 1 or test_per_class < 1:
        raise ValueError(f'train_per_class and test_per_class must be >= 1, '
                         f'got {train_per_class}, {test_per_class}')
    class_pattern_images(np.zeros(0, np.int64), image_size,
                         np.random.default_rng(0), noise=noise,
                         difficulty=difficulty)  # bad values fail here
    folder = osp.join(root, 'cifar-10-batches-py')
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = balanced_labels(train_per_class, 10, rng)
    images = class_pattern_images(labels, image_size, rng, noise=noise,
                                  difficulty=difficulty)
    for i, part in enumerate(np.array_split(np.arange(len(labels)), 5)):
        write_cifar_batch(osp.join(folder, f'data_batch_{i + 1}'),
                          images[part], labels[part],
                          batch_label=f'training batch {i + 1} of 5')
    labels = balanced_labels(test_per_class, 10, rng)
    write_cifar_batch(osp.join(folder, 'test_batch'),
                      class_pattern_images(labels, image_size, rng,
                                           noise=noise,
                                           difficulty=difficulty),
                      labels, batch_label='testing batch 1 of 1')
    write_cifar_pickle(osp.join(folder, 'batches.meta'), {
        'label_names': list(CIFAR10_CLASSES),
        'num_cases_per_batch': int(np.ceil(10 * train_per_class / 5)),
        'num_vis': 3 * image_size * image_size,
    })
    return folder


def make_synthetic_cifar100(root: str,
                            train_per_class: int = 2,
                            test_per_class: int = 1,
                            seed: int = 0) -> str:
    """Write a CIFAR-100-format dataset (``train``, ``test``, ``meta``) to
    ``root/cifar-100-python/``; returns that folder."""
    folder = osp.join(root, 'cifar-100-python')
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, per_class in (('train', train_per_class),
                            ('test', test_per_class)):
        labels = balanced_labels(per_class, 100, rng)
        images = class_pattern_images(labels, 32, rng, num_classes=100)
        write_cifar_batch(osp.join(folder, name), images, labels,
                          labels_key='fine_labels', batch_label=name)
    write_cifar_pickle(osp.join(folder, 'meta'), {
        'fine_label_names': [f'class_{i:02d}' for i in range(100)],
        'coarse_label_names': [f'super_{i:02d}' for i in range(20)],
    })
    return folder


# ----------------------------------------------------------------- SVHN


def write_svhn_mat(path: str, images: np.ndarray,
                   labels: np.ndarray) -> None:
    """An SVHN ``.mat``: ``X`` ``(32, 32, 3, N)`` uint8 from RGB ``images``
    ``(N, 32, 32, 3)``, ``y`` ``(N, 1)`` uint8 with the digit 0 written as
    10."""
    from scipy.io import savemat
    images = np.asarray(images, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
    savemat(path, dict(X=np.ascontiguousarray(images.transpose(1, 2, 3, 0)),
                       y=y))


def make_synthetic_svhn(root: str,
                        train_per_class: int = 10,
                        test_per_class: int = 2,
                        seed: int = 0) -> str:
    """Write ``train_32x32.mat`` and ``test_32x32.mat`` to ``root``;
    returns ``root``."""
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, per_class in (('train', train_per_class),
                             ('test', test_per_class)):
        labels = balanced_labels(per_class, 10, rng)
        write_svhn_mat(osp.join(root, f'{split}_32x32.mat'),
                       class_pattern_images(labels, 32, rng), labels)
    return root


# --------------------------------------------------------------- STL-10


def write_stl10_bin(folder: str, split: str, images: np.ndarray,
                    labels: np.ndarray) -> None:
    """``<split>_X.bin`` (RGB ``(N, 96, 96, 3)`` uint8 stored column-major:
    channel planes, each transposed) and ``<split>_y.bin`` (uint8 labels
    ``1..10``) in ``folder``."""
    images = np.asarray(images, dtype=np.uint8)
    if images.shape[1:] != (STL10_SIZE, STL10_SIZE, 3):
        raise ValueError(f'STL-10 images must be (N, 96, 96, 3), got '
                         f'{images.shape}')
    os.makedirs(folder, exist_ok=True)
    np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tofile(
        osp.join(folder, f'{split}_X.bin'))
    (np.asarray(labels, dtype=np.int64) + 1).astype(np.uint8).tofile(
        osp.join(folder, f'{split}_y.bin'))


def make_synthetic_stl10(root: str,
                         train_per_class: int = 2,
                         test_per_class: int = 1,
                         seed: int = 0,
                         class_names: bool = True) -> str:
    """Write ``train_X.bin`` / ``train_y.bin`` / ``test_X.bin`` /
    ``test_y.bin`` (and ``class_names.txt``) to ``root/stl10_binary/``, as
    the official archive; returns that folder."""
    folder = osp.join(root, 'stl10_binary')
    rng = np.random.default_rng(seed)
    for split, per_class in (('train', train_per_class),
                             ('test', test_per_class)):
        labels = balanced_labels(per_class, 10, rng)
        write_stl10_bin(folder, split,
                        class_pattern_images(labels, STL10_SIZE, rng),
                        labels)
    if class_names:
        with open(osp.join(folder, 'class_names.txt'), 'w') as f:
            f.write('\n'.join(STL10_CLASSES) + '\n')
    return folder


# ------------------------------------------------------------- ImageNet


def make_synthetic_imagenet(root: str,
                            classes: Sequence[str] = ('n01440764',
                                                      'n01443537',
                                                      'n01484850'),
                            train_per_class: int = 2,
                            val_per_class: int = 1,
                            seed: int = 0,
                            image_size: Tuple[int, int] = (40, 56),
                            ext: str = '.JPEG') -> dict:
    """Write ImageNet-style class folders ``root/{train,val}/<class>/``
    of ``image_size`` ``(H, W)`` images (``ext``: ``'.JPEG'``, ``'.png'``,
    ...; written with cv2) and the list files ``root/meta/train.txt`` /
    ``root/meta/val.txt`` (``<split>/<class>/<file> <label>`` a line,
    relative to ``root``).

    Returns:
        dict: ``{'train': [(path, label), ...], 'val': [...]}``.
    """
    rng = np.random.default_rng(seed)
    written = {}
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    for split, per_class in (('train', train_per_class),
                             ('val', val_per_class)):
        written[split] = []
        lines = []
        for label, name in enumerate(classes):
            folder = osp.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            images = class_pattern_images(
                np.full(per_class, label), image_size, rng,
                num_classes=max(len(classes), 1))
            for i, img in enumerate(images):
                file = f'{name}_{i:05d}{ext}'
                path = osp.join(folder, file)
                if not cv2.imwrite(path, img[..., ::-1]):
                    raise OSError(f'cv2 could not write {path}')
                written[split].append((path, label))
                lines.append(f'{split}/{name}/{file} {label}')
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return written
