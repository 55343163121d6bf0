"""ResNetV1c that knows where it is cut into local modules."""
from typing import Dict, List, Sequence, Tuple

import torch.nn as nn
from torch import Tensor

from mmseg.models.backbones import ResNetV1c
from mmseg.registry import MODELS

SplitPoint = Tuple[int, int]


def normalize_split_points(split_points, stage_blocks: Sequence[int],
                           where: str = 'split_points') -> List[SplitPoint]:
    """Check ``split_points`` against a ResNet's ``stage_blocks``.

    Args:
        split_points: a sequence of ``(layer, block)`` pairs, ``layer`` in
            ``1..len(stage_blocks)``, ``block`` 0-based; each is a cut
            *before* that block. Strictly increasing, no cut before
            ``(1, 0)``, the network's very first block.
        stage_blocks: number of blocks of each layer, e.g. ``(3, 4, 23, 3)``.

    Returns:
        The cuts as a list of ``(int, int)`` tuples.

    Raises:
        ValueError / TypeError naming the bad value and the allowed range.
    """
    if split_points is None:
        return []
    if isinstance(split_points, str) and split_points == 'auto':
        raise ValueError(
            f"{where}='auto' is not resolved when the model is built: the "
            'balanced cuts depend on the batch and crop size. Plan them '
            'with `python tools/plan_splits.py CONFIG --num-modules K '
            '--write PLANNED_CONFIG.py` and train with the written config')
    if isinstance(split_points, (str, bytes)) or not isinstance(
            split_points, Sequence):
        raise TypeError(f'{where} must be a list of (layer, block) pairs, '
                        f'got {split_points!r}')
    num_layers = len(stage_blocks)
    total = sum(stage_blocks)
    if len(split_points) > total - 1:
        raise ValueError(
            f'{where} has {len(split_points)} cuts, but this ResNet has '
            f'{total} blocks, so at most {total - 1} cuts (K <= {total} '
            'local modules) are possible')
    points = []
    for point in split_points:
        if (not isinstance(point, Sequence) or len(point) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool)
                           for v in point)):
            raise TypeError(f'{where}: each cut must be a (layer, block) '
                            f'pair of ints, got {point!r}')
        layer, block = point
        if not 1 <= layer <= num_layers:
            raise ValueError(
                f'{where}: cut {tuple(point)} has layer {layer}, allowed '
                f'range is 1..{num_layers}')
        if not 0 <= block < stage_blocks[layer - 1]:
            raise ValueError(
                f'{where}: cut {tuple(point)} has block {block}, layer '
                f'{layer} has blocks 0..{stage_blocks[layer - 1] - 1}')
        if (layer, block) == (1, 0):
            raise ValueError(
                f'{where}: cut (1, 0) is before the very first block, which '
                'would leave a local module with the stem only; the first '
                'allowed cut is (1, 1)' if stage_blocks[0] > 1 else
                f'{where}: cut (1, 0) is before the very first block; the '
                'first allowed cut is (2, 0)')
        points.append((layer, block))
    for prev, cur in zip(points, points[1:]):
        if cur == prev:
            raise ValueError(f'{where}: duplicate cut {cur} in {points}')
        if cur < prev:
            raise ValueError(f'{where} must be sorted in network order, but '
                             f'{cur} comes after {prev} in {points}')
    return points


@MODELS.register_module()
class InfoProResNetV1c(ResNetV1c):
    """ResNetV1c cut into ``K = len(split_points) + 1`` local modules.

    The network, its state-dict keys and its plain :meth:`forward` are
    exactly ResNetV1c's. What it adds is the partition: module 0 is the stem
    plus the blocks before the first cut, module ``k`` runs the blocks from
    cut ``k-1`` to cut ``k``, and :meth:`forward_module` runs one module.

    Args:
        split_points (list[tuple[int, int]]): cuts, each ``(layer, block)``
            with ``layer`` in 1..num_stages and ``block`` 0-based: the cut is
            *before* that block. ``[(3, 13)]`` is the paper's K=2 for
            ResNet-101 (13 of the 23 blocks of layer3 in module 0).
            ``[]`` (default) is K=1, i.e. end-to-end.
        **kwargs: ResNetV1c's arguments.
    """

    def __init__(self, split_points=(), **kwargs):
        super().__init__(**kwargs)
        self.split_points = normalize_split_points(split_points,
                                                   self.stage_blocks)

    def init_weights(self):
        """ResNet's init; a pretrained checkpoint that cannot be fetched
        or read (offline machine, wrong path) fails with the remedy."""
        init_cfg = self.init_cfg if isinstance(self.init_cfg, dict) else {}
        source = init_cfg.get('checkpoint') \
            if init_cfg.get('type') == 'Pretrained' else None
        if source is None:
            return super().init_weights()
        try:
            return super().init_weights()
        except (OSError, ConnectionError, RuntimeError, ValueError) as err:
            raise RuntimeError(
                f'could not load the pretrained backbone weights {source!r}: '
                f'{type(err).__name__}: {err}. If this machine is offline, '
                'download the file elsewhere and pass its local path '
                '(--cfg-options model.pretrained=/path/to/resnet.pth), or '
                'train from scratch with --cfg-options model.pretrained=None'
            ) from err

    # ------------------------------------------------------------ partition
    @property
    def num_modules(self) -> int:
        return len(self.split_points) + 1

    def all_blocks(self) -> List[SplitPoint]:
        """Every block as ``(layer, block)`` in network order."""
        return [(layer + 1, block)
                for layer, n in enumerate(self.stage_blocks)
                for block in range(n)]

    def module_blocks(self, k: int) -> List[SplitPoint]:
        """The ``(layer, block)`` pairs that module ``k`` (0-based) runs."""
        if not 0 <= k < self.num_modules:
            raise IndexError(f'local module {k} out of range '
                             f'0..{self.num_modules - 1}')
        blocks = self.all_blocks()
        bounds = [0] + [blocks.index(p) for p in self.split_points
                        ] + [len(blocks)]
        return blocks[bounds[k]:bounds[k + 1]]

    def get_block(self, layer: int, block: int) -> nn.Module:
        return getattr(self, self.res_layers[layer - 1])[block]

    def stem_modules(self) -> List[nn.Module]:
        if self.deep_stem:
            return [self.stem, self.maxpool]
        return [self.conv1, self.norm1, self.relu, self.maxpool]

    def module_parts(self, k: int) -> List[nn.Module]:
        """The sub-modules (stem, blocks) whose parameters module ``k``
        owns."""
        parts = self.stem_modules() if k == 0 else []
        return parts + [self.get_block(*p) for p in self.module_blocks(k)]

    def block_out_channels(self, layer: int) -> int:
        """Channels of every block output in ``layer`` (1-based)."""
        return self.base_channels * 2**(layer - 1) * self.block.expansion

    def module_out_channels(self, k: int) -> int:
        """Channels of module ``k``'s output (what its local head sees)."""
        layer, _ = self.module_blocks(k)[-1]
        return self.block_out_channels(layer)

    def module_out_name(self, k: int) -> str:
        layer, block = self.module_blocks(k)[-1]
        return f'layer{layer}[{block}]'

    def forward_module(self, k: int, x: Tensor,
                       outs: Dict[int, Tensor]) -> Tensor:
        """Run module ``k`` on ``x``.

        Args:
            k: module index, 0..K-1. Module 0 takes the image batch
                (N, 3, H, W); module k > 0 takes module k-1's output.
            x: the input tensor.
            outs: filled in place with ``{layer_index: output}`` (0-based,
                as ``out_indices``) for every layer in ``out_indices``
                that ends inside this module.

        Returns:
            The module's output tensor.
        """
        if k == 0:
            for m in self.stem_modules():
                x = m(x)
        for layer, block in self.module_blocks(k):
            x = self.get_block(layer, block)(x)
            if (block == self.stage_blocks[layer - 1] - 1
                    and layer - 1 in self.out_indices):
                outs[layer - 1] = x
        return x
