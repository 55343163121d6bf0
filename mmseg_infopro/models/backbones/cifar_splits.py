"""The InfoPro release's CIFAR split tables and their notation.

The release (``blackfeather-wang/InfoPro-Pytorch``, folder ``Experiments on
CIFAR-SVHN-STL10``) writes its cuts as ``[stage, block]`` pairs: a local
module ends *after* block ``block`` (0-based) of stage ``stage`` (1-based),
``[0, 0]`` after the stem. Here a cut is ``(stage, block)``, *before* that
block (:class:`InfoProCifarResNet`'s ``split_points``).

* :data:`RELEASE_SPLITS`: the release's tables (``networks/configs.py``);
* :func:`release_to_split_points`: release notation -> ``split_points``;
* :func:`release_split_points`: one published split as ``split_points``;
* :func:`cifar_stage_blocks`: blocks per stage of ResNet-(6n+2).
"""
from typing import Dict, List, Sequence, Tuple

from .base import SplitPoint, _as_list, is_int

#: the release's cut tables, copied as data (``networks/configs.py``):
#: ``{table: {depth: {K: [[stage, block], ...]}}}`` for the even table
#: (``InfoPro``, paper "InfoPro") and ``{'balanced': {depth: {dataset: {K:
#: ...}}}}`` for the memory-balanced one (``InfoPro_balanced_memory``,
#: paper "InfoPro*"). Release notation: ``[s, b]`` ends a local module
#: *after* block ``b`` (0-based) of stage ``s`` (1-based), ``[0, 0]`` after
#: the stem.
RELEASE_SPLITS: Dict[str, dict] = {
    'even': {
        32: {
            1: [],
            2: [[2, 1]],
            3: [[1, 4], [2, 4]],
            4: [[1, 2], [2, 1], [3, 0]],
            8: [[1, 0], [1, 2], [1, 4], [2, 1], [2, 3], [3, 0], [3, 2]],
            16: [[0, 0], [1, 0], [1, 1], [1, 2], [1, 3], [1, 4], [2, 0],
                 [2, 1], [2, 2], [2, 3], [2, 4], [3, 0], [3, 1], [3, 2],
                 [3, 3]],
        },
        110: {
            1: [],
            2: [[2, 8]],
            3: [[1, 17], [2, 17]],
            4: [[1, 11], [2, 7], [3, 3]],
            8: [[1, 4], [1, 11], [2, 0], [2, 7], [2, 14], [3, 3], [3, 10]],
            16: [[1, 1], [1, 4], [1, 7], [1, 10], [1, 13], [1, 16], [2, 1],
                 [2, 4], [2, 7], [2, 11], [2, 15], [3, 1], [3, 5], [3, 9],
                 [3, 13]],
        },
    },
    'balanced': {
        110: {
            'cifar10': {
                1: [],
                2: [[1, 14]],
                3: [[1, 9], [2, 2]],
                4: [[1, 6], [1, 14], [2, 8]],
            },
            'stl10': {
                1: [],
                2: [[1, 14]],
                3: [[1, 8], [2, 1]],
                4: [[1, 6], [1, 14], [2, 8]],
            },
        },
    },
}


def cifar_stage_blocks(depth) -> Tuple[int, int, int]:
    """Blocks per stage of ResNet-``depth``: ``depth = 6n + 2`` -> (n, n, n).

    Raises:
        ValueError naming the depth and the allowed values.
    """
    if not is_int(depth) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f'CifarResNet: depth must be 6n+2 with n >= 1 (20, 32, 44, 56, '
            f'110, ...), got {depth!r}')
    n = (depth - 2) // 6
    return (n, n, n)


def release_to_split_points(release, stage_blocks: Sequence[int]
                            ) -> List[SplitPoint]:
    """The release's cut notation -> ``split_points`` (cuts before blocks).

    In the release (``networks/resnet.py``, ``InfoProResNet.forward``) the
    training loop runs the stem, checks ``infopro_config[i] == [0, 0]``,
    then for ``stage_i in (1, 2, 3)`` and ``layer_i in range(blocks)`` runs
    ``layer{stage_i}[layer_i]`` and *then* checks ``infopro_config[i] ==
    [stage_i, layer_i]``; on a match it computes module ``i``'s local loss
    on that output, back-propagates it and detaches. So ``[s, b]`` means:
    the local module ends *after* block ``b`` (0-based) of stage ``s``
    (1-based); ``[0, 0]`` means it ends after the stem. Here a cut is
    written before the next block: ``[s, b]`` -> ``(s, b + 1)``, or
    ``(s + 1, 0)`` after a stage's last block; ``[0, 0]`` -> ``(1, 0)``.

    Args:
        release: list of ``[stage, block]`` pairs in network order.
        stage_blocks: blocks per stage, e.g. ``(18, 18, 18)``.

    Returns:
        list of ``(stage, block)`` cuts.

    Raises:
        TypeError / ValueError naming the bad entry and the allowed range.
    """
    release = _as_list(release)
    if isinstance(release, (str, bytes)) or not isinstance(release, Sequence):
        raise TypeError('release split points must be a list of [stage, '
                        f'block] pairs, got {release!r}')
    num_stages = len(stage_blocks)
    cuts = []
    for entry in release:
        entry = _as_list(entry)
        if (isinstance(entry, (str, bytes)) or
                not isinstance(entry, Sequence) or len(entry) != 2 or
                not all(is_int(v) for v in entry)):
            raise TypeError('release split points: each entry must be a '
                            f'[stage, block] pair of ints, got {entry!r}')
        stage, block = (int(v) for v in entry)
        if stage == 0:
            if block != 0:
                raise ValueError(
                    f'release split points: {[stage, block]} is in stage 0 '
                    '(the stem), whose only entry is [0, 0]')
            cuts.append((1, 0))
            continue
        if not 1 <= stage <= num_stages:
            raise ValueError(
                f'release split points: {[stage, block]} has stage {stage}, '
                f'allowed range is 0 (the stem, [0, 0]) or 1..{num_stages}')
        if not 0 <= block < stage_blocks[stage - 1]:
            raise ValueError(
                f'release split points: {[stage, block]} has block {block}, '
                f'stage {stage} has blocks 0..{stage_blocks[stage - 1] - 1}')
        if block + 1 < stage_blocks[stage - 1]:
            cuts.append((stage, block + 1))
        elif stage < num_stages:
            cuts.append((stage + 1, 0))
        else:
            raise ValueError(
                f'release split points: {[stage, block]} ends the last '
                'block of the network, which would leave the last local '
                f'module without a block; the last allowed entry is '
                f'{[num_stages, stage_blocks[-1] - 2]}')
    for prev, cur in zip(cuts, cuts[1:]):
        if cur <= prev:
            raise ValueError('release split points must be distinct and in '
                             f'network order, got {release!r}')
    return cuts


def release_split_points(depth: int, num_modules: int, balanced: bool = False,
                         dataset: str = 'cifar10') -> List[SplitPoint]:
    """Our ``split_points`` for one of the release's published splits.

    Args:
        depth: 32 or 110 (``balanced`` only 110).
        num_modules: K; the even table has 1, 2, 3, 4, 8, 16, the balanced
            one 1, 2, 3, 4.
        balanced: the memory-balanced table (paper: InfoPro*) instead of
            the even one (paper: InfoPro).
        dataset: the balanced table's dataset, ``'cifar10'`` or
            ``'stl10'`` (the release has none for SVHN); ignored otherwise.

    Returns:
        list of ``(stage, block)`` cuts, e.g. ``[(2, 9)]`` for ResNet-110,
        K=2, even (release ``[[2, 8]]``) and ``[(1, 15)]`` balanced
        (release ``[[1, 14]]``).
    """
    table = RELEASE_SPLITS['balanced' if balanced else 'even']
    name = 'balanced (InfoPro*)' if balanced else 'even (InfoPro)'
    if depth not in table:
        raise ValueError(f'the release has no {name} split table for depth '
                         f'{depth!r}; it has depths {sorted(table)}')
    table = table[depth]
    if balanced:
        if dataset not in table:
            raise ValueError(
                f'the release has no balanced (InfoPro*) split table for '
                f'dataset {dataset!r}; it has {sorted(table)}')
        table = table[dataset]
    if num_modules not in table:
        raise ValueError(
            f'the release has no {name} split for ResNet-{depth} with '
            f'K={num_modules!r}; it has K in {sorted(table)}')
    return release_to_split_points(table[num_modules],
                                   cifar_stage_blocks(depth))
