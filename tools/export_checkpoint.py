"""Export an InfoPro checkpoint for plain mmseg (deployment, mmseg's tools).

    python tools/export_checkpoint.py CKPT --out OUT.pth [--config CFG]

Writes ``OUT.pth`` (exactly the plain model's weights, loadable with
``torch.load(..., weights_only=True)``) and ``OUT.py`` (the matching plain
mmseg config): :func:`mmseg_infopro.models.export.export_checkpoint` says
what is kept and dropped. The training config is read from the checkpoint
(``meta['cfg']``) unless ``--config`` is given. A successful export is
loadable by plain mmseg (an image classifier becomes this package's
end-to-end ``ImageClassifier``: mmseg has none)::

    from mmseg.apis import inference_model, init_model
    model = init_model('OUT.py', 'OUT.pth', device='cpu')
    result = inference_model(model, 'image.png')
    # or: python mmseg/tools/test.py OUT.py OUT.pth
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict

try:
    import mmseg_infopro  # noqa: F401  (compat first, then registration)
except ImportError:  # running from a source checkout without install
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_infopro  # noqa: F401

from mmseg_infopro.models.export import (  # noqa: E402
    ExportError, export_checkpoint)
from mmseg_infopro.safe_loading import UnsafeCheckpointError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export an InfoPro checkpoint for plain mmseg')
    parser.add_argument('checkpoint', help='InfoPro (mmengine) checkpoint')
    parser.add_argument('--out', required=True,
                        help='exported checkpoint (.pth); the config is '
                        'written next to it with the suffix .py')
    parser.add_argument('--config',
                        help='training config (default: the one stored in '
                        "the checkpoint's meta['cfg'])")
    return parser.parse_args(argv)


def _summary(keys):
    groups = OrderedDict()
    for key in keys:
        prefix = key.split('.')[0]
        groups[prefix] = groups.get(prefix, 0) + 1
    return ', '.join(f'{p}.* ({n})' for p, n in groups.items())


def main(argv=None) -> dict:
    """Export; returns ``dict(checkpoint=..., config=..., dropped=[...],
    exported=[...])``."""
    args = parse_args(argv)
    try:
        result = export_checkpoint(args.checkpoint, args.out, args.config)
    except (ExportError, UnsafeCheckpointError) as error:
        raise SystemExit(str(error)) from None
    print(f'exported {len(result["exported"])} tensors to '
          f'{result["checkpoint"]} and the plain (end-to-end) config to '
          f'{result["config"]}')
    print(f'dropped {len(result["dropped"])} training-only tensors: '
          f'{_summary(result["dropped"]) or "none"}')
    return result


if __name__ == '__main__':
    main()
