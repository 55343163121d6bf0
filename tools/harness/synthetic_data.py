"""Generated datasets for the demo and the studies: generate one unless the
same one is already there (``synthetic_meta.json`` records what was
generated), and never write into a folder that holds something else."""
import json
import os
import os.path as osp
from typing import Callable, Optional

from mmseg_infopro.datasets.classification import make_synthetic_cifar10
from mmseg_infopro.datasets.synthetic_cityscapes import (
    META_FILE, make_synthetic_cityscapes, read_meta)

#: the generators, by ``kind``
GENERATORS = dict(synthetic_cityscapes=make_synthetic_cityscapes,
                  synthetic_cifar10=make_synthetic_cifar10)


class GeneratedDataError(ValueError):
    """The folder holds another dataset (the message says what to do)."""


def ensure_generated(root: str, kind: str, params: dict,
                     replace_other: bool = False,
                     log: Callable[[str], None] = print,
                     message: Optional[str] = None) -> bool:
    """Generate a ``kind`` dataset with ``params`` in ``root`` unless that
    same one is there; returns whether it generated.

    A folder holding another *generated* dataset is regenerated with
    ``replace_other`` (the demo), else refused; a non-empty folder with no
    ``synthetic_meta.json`` is always refused. A metadata file without a
    ``kind`` (written before kinds were recorded) counts as
    ``synthetic_cityscapes``. ``message`` is logged when it generates
    (default: the kind, the folder and the parameters).

    Raises:
        GeneratedDataError: naming the folder, what it holds and what was
            asked for.
    """
    if kind not in GENERATORS:
        raise GeneratedDataError(f'unknown dataset kind {kind!r}; known: '
                                 f'{sorted(GENERATORS)}')
    meta = read_meta(root)
    if meta is not None:
        if meta.get('kind', 'synthetic_cityscapes') == kind and all(
                meta.get(k) == v for k, v in params.items()):
            return False
        if not replace_other:
            theirs = {k: meta.get(k) for k in params}
            raise GeneratedDataError(
                f'{root} holds another generated dataset ({theirs}); '
                f'asked for {kind} {params}. Use another folder or remove '
                'that one.')
    elif osp.isdir(root) and os.listdir(root):
        raise GeneratedDataError(
            f'{root} is not empty and holds no generated dataset (no '
            f'{META_FILE}): refusing to write into it; use another folder')
    log(message or f'generating {kind} in {root} ({params})')
    GENERATORS[kind](root, **params)
    meta = read_meta(root) or {}
    meta.update(params, kind=kind)
    with open(osp.join(root, META_FILE), 'w') as f:
        json.dump(meta, f, indent=1)
    return True
