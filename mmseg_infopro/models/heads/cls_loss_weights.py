"""The InfoPro release's per-module loss weights for image classification.

From ``blackfeather-wang/InfoPro-Pytorch``, ``Experiments on
CIFAR-SVHN-STL10``:

* :data:`RELEASE_LOSS_WEIGHTS`: ``comand.sh``'s ``(ixx_1, ixy_1, ixx_2,
  ixy_2)`` per dataset, table, depth and K; :func:`release_loss_weights`
  looks one run up;
* :func:`interpolated_weights`: how ``networks/resnet.py`` spreads them
  over the non-final local modules: ``(loss_recons_weight,
  loss_aux_weight)`` of module ``k``, linear from the first module's to the
  (K-1)-th's.
"""
from typing import Dict, Sequence, Tuple

#: ``comand.sh``'s ``(ixx_1, ixy_1, ixx_2, ixy_2)``: ``{dataset: {table:
#: {depth: {K: (ixx_1, ixy_1, ixx_2, ixy_2)}}}}``. ``ixx`` weighs the
#: reconstruction loss, ``ixy`` the contrastive loss (all commands use
#: ``--local_loss_mode contrast --aux_net_config 1c2f
#: --aux_net_feature_dim 128``); ``_1`` is the first local module's,
#: ``_2`` the (K-1)-th's, see :func:`interpolated_weights`. ``table`` is
#: ``'even'`` (paper: InfoPro) or ``'balanced'`` (``--balanced_memory``,
#: paper: InfoPro*).
RELEASE_LOSS_WEIGHTS: Dict[str, dict] = {
    'cifar10': {
        'even': {
            32: {2: (5, 1, 0, 0), 4: (6, 0, 1, 2), 8: (5, 0, 0, 2),
                 16: (5, 0.05, 0.2, 0.5)},
            110: {2: (5, 0.5, 0, 0), 4: (1, 0, 0, 1), 8: (5, 0, 0, 1),
                  16: (5, 0, 0.5, 1)},
        },
        'balanced': {
            110: {2: (5, 0.1, 0, 0), 3: (5, 0, 5, 0.1), 4: (5, 0, 5, 0.1)},
        },
    },
    'stl10': {
        'even': {
            110: {2: (10, 1, 0, 0), 4: (20, 0.2, 5, 2), 8: (20, 0.2, 5, 1),
                  16: (20, 0.5, 10, 0.1)},
        },
        'balanced': {
            110: {2: (20, 1, 0, 0), 3: (20, 0.5, 5, 2), 4: (20, 0.5, 10, 1)},
        },
    },
    'svhn': {
        'even': {
            110: {2: (1, 0.1, 0, 0), 4: (5, 0, 0.5, 1), 8: (5, 0, 0.5, 2),
                  16: (5, 0.2, 0.5, 1)},
        },
    },
}


def release_loss_weights(dataset: str, depth: int, num_modules: int,
                         balanced: bool = False) -> Dict[str, float]:
    """The release's ``dict(ixx_1=, ixy_1=, ixx_2=, ixy_2=)`` for one run of
    ``comand.sh``; errors list what the release has."""
    if dataset not in RELEASE_LOSS_WEIGHTS:
        raise ValueError(f'the release has no loss weights for dataset '
                         f'{dataset!r}; it has {sorted(RELEASE_LOSS_WEIGHTS)}')
    table = 'balanced' if balanced else 'even'
    runs = RELEASE_LOSS_WEIGHTS[dataset].get(table, {}).get(depth, {})
    if num_modules not in runs:
        have = sorted((t, d, k)
                      for t, depths in RELEASE_LOSS_WEIGHTS[dataset].items()
                      for d, ks in depths.items() for k in ks)
        raise ValueError(
            f'the release has no loss weights for {dataset}, ResNet-{depth}, '
            f'K={num_modules}, {table} table; it has (table, depth, K) in '
            f'{have}')
    return dict(zip(('ixx_1', 'ixy_1', 'ixx_2', 'ixy_2'), runs[num_modules]))


def interpolated_weights(k: int, num_modules: int, first: Sequence[float],
                         last: Sequence[float]) -> Tuple[float, float]:
    """``(loss_recons_weight, loss_aux_weight)`` of local module ``k``.

    The release (``networks/resnet.py``, ``InfoProResNet.forward``) sets,
    for the non-final module ``k`` (0-based, ``0 <= k <= K-2``),
    ``ratio = k / (K - 2)`` (0 when K = 2) and ``w = first * (1 - ratio) +
    last * ratio``, for both weights: module 0 gets ``first``, module K-2
    ``last``, linearly in between. The final module (k = K-1) has the plain
    task loss and no local weights.

    Args:
        k: 0-based local module index, 0..K-2.
        num_modules: K >= 2.
        first: ``(ixx_1, ixy_1)``: (reconstruction, aux) weights of module 0.
        last: ``(ixx_2, ixy_2)``: those of module K-2 (unused when K = 2).
    """
    if isinstance(num_modules, bool) or not isinstance(num_modules, int) \
            or num_modules < 2:
        raise ValueError('interpolated_weights: num_modules must be an int '
                         f'>= 2 (K=1 has no local module), got {num_modules!r}')
    if isinstance(k, bool) or not isinstance(k, int) \
            or not 0 <= k <= num_modules - 2:
        raise ValueError(
            f'interpolated_weights: k must be a local module index in '
            f'0..{num_modules - 2} (module {num_modules - 1} is the final '
            f'one, without local weights), got {k!r}')
    if len(first) != 2 or len(last) != 2:
        raise ValueError('interpolated_weights: first and last are '
                         '(recons, aux) pairs, got '
                         f'{first!r}, {last!r}')
    ratio = k / (num_modules - 2) if num_modules > 2 else 0.0
    return tuple(float(a) * (1 - ratio) + float(b) * ratio
                 for a, b in zip(first, last))
