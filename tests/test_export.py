"""tools/export_checkpoint.py: an InfoPro checkpoint (2 iterations of the
K=2 demo) becomes a plain mmseg checkpoint + config, loaded with strict keys
by mmseg.apis.init_model, with weights_only=True by torch, and run by
mmseg's own tools/test.py in a process that never imports mmseg_infopro."""
import glob
import json
import os.path as osp
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner, load_checkpoint
from PIL import Image

from mmseg_infopro.safe_loading import load_checkpoint as load_ckpt
from conftest import REPO, demo_cfg
from mmseg.apis import inference_model, init_model
from mmseg.datasets import CityscapesDataset
from mmseg.registry import MODELS

sys.path.insert(0, osp.join(REPO, 'tools'))
import export_checkpoint as export_tool  # noqa: E402

# mmseg's tools/test.py in a fresh process, as a user without this package
# runs it: only the environment fixes a full-mmcv / old-setuptools install
# would not need (compat.py loaded as a file: mmseg_infopro is never
# imported, and torch.load keeps torch >= 2.6's weights_only=True default).
PLAIN_MMSEG_TEST = '''
import importlib.util, os, runpy, sys
spec = importlib.util.spec_from_file_location('env_fixes', sys.argv[1])
env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(env)
env._fix_mmcv_lite()
env._fix_pkg_resources()
import mmseg
tool = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'tools',
                    'test.py')
sys.argv = [tool] + sys.argv[2:]
runpy.run_path(tool, run_name='__main__')
assert 'mmseg_infopro' not in sys.modules
print('PLAIN_MMSEG_OK')
'''


@pytest.fixture(scope='module')
def trained(synthetic_root, tmp_path_factory):
    """2 iterations of the InfoPro K=2 demo (validation at the end)."""
    work = tmp_path_factory.mktemp('export_train')
    cfg = demo_cfg(synthetic_root, work, max_iters=2)
    Runner.from_cfg(cfg).train()
    [cfg_path] = glob.glob(osp.join(str(work), '*.py'))
    [scalars] = glob.glob(osp.join(str(work), '*', 'vis_data',
                                   'scalars.json'))
    with open(scalars) as f:
        [val] = [r for r in map(json.loads, f) if 'mIoU' in r]
    return dict(work=str(work), ckpt=osp.join(str(work), 'iter_2.pth'),
                cfg=cfg_path, miou=val['mIoU'])


@pytest.fixture(scope='module')
def exported(trained, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('export') / 'deeplabv3_plain.pth')
    result = export_tool.main([trained['ckpt'], '--out', out])
    return result


def val_images(root):
    return sorted(glob.glob(osp.join(root, 'leftImg8bit', 'val', '*',
                                     '*.png')))


def test_exported_files_are_plain_mmseg(trained, exported):
    assert exported['config'] == exported['checkpoint'][:-4] + '.py'
    assert sorted({k.split('.')[0] for k in exported['dropped']}) == [
        'local_heads'
    ]
    cfg = Config.fromfile(exported['config'])
    assert cfg.model.type == 'EncoderDecoder'
    assert cfg.model.backbone.type == 'ResNetV1c'
    assert cfg.model.pretrained is None
    assert 'split_points' not in cfg.model.backbone
    assert 'local_heads' not in cfg.model
    for key in ('custom_imports', 'model_wrapper_cfg', 'custom_hooks'):
        assert key not in cfg, key  # the demo's RNGStateHook is ours
    with open(exported['config']) as f:
        text = f.read()
    assert 'infopro' not in text.lower() and 'RNGState' not in text


def test_exported_checkpoint_loads_with_weights_only(trained, exported):
    ckpt = torch.load(exported['checkpoint'], weights_only=True)
    assert set(ckpt) == {'meta', 'state_dict'}
    assert not any(k.startswith('local_heads.') for k in ckpt['state_dict'])
    meta = ckpt['meta']
    assert tuple(meta['dataset_meta']['classes']) == \
        CityscapesDataset.METAINFO['classes']
    assert meta['dataset_meta']['palette'] == \
        CityscapesDataset.METAINFO['palette']
    assert meta['iter'] == 2
    # the training checkpoint itself does not (why the export exists)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(trained['ckpt'], weights_only=True)
    # exactly the plain model's keys, strict
    cfg = Config.fromfile(exported['config'])
    model = MODELS.build(cfg.model)
    assert list(ckpt['state_dict']) == list(model.state_dict())
    load_checkpoint(model, exported['checkpoint'], strict=True)
    train_state = load_ckpt(trained['ckpt'])['state_dict']
    for key, value in model.state_dict().items():
        assert torch.equal(value, train_state[key]), key


def test_init_model_predicts_like_the_infopro_model(synthetic_root, trained,
                                                    exported):
    infopro = init_model(trained['cfg'], trained['ckpt'], device='cpu')
    assert type(infopro).__name__ == 'InfoProEncoderDecoder'
    assert len(infopro.local_heads) == 1
    plain = init_model(exported['config'], exported['checkpoint'],
                       device='cpu')
    assert type(plain).__name__ == 'EncoderDecoder'
    assert type(plain.backbone).__name__ == 'ResNetV1c'
    assert plain.dataset_meta['classes'] == \
        CityscapesDataset.METAINFO['classes']
    images = val_images(synthetic_root)
    assert len(images) == 2
    for image in images:
        a = inference_model(infopro, image)
        b = inference_model(plain, image)
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)
        assert torch.equal(a.seg_logits.data, b.seg_logits.data)
    # and a batch of arrays
    arrays = [np.ascontiguousarray(np.asarray(Image.open(p))[..., ::-1])
              for p in images]  # BGR, as mmcv loads them
    for a, b in zip(inference_model(infopro, arrays),
                    inference_model(plain, arrays)):
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)


def test_mmseg_test_tool_runs_the_export(trained, exported, tmp_path):
    """mmseg's own tools/test.py, no mmseg_infopro, torch's default
    weights_only=True: the mIoU of the training run's final validation."""
    script = tmp_path / 'plain_mmseg_test.py'
    script.write_text(PLAIN_MMSEG_TEST)
    out = subprocess.run(
        [sys.executable, str(script),
         osp.join(REPO, 'mmseg_infopro', 'compat.py'), exported['config'],
         exported['checkpoint'], '--work-dir', str(tmp_path / 'work')],
        capture_output=True, text=True, cwd=str(tmp_path))
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert 'PLAIN_MMSEG_OK' in out.stdout
    [miou] = re.findall(r'Iter\(test\) \[2/2\].*mIoU: ([\d.]+)', log)
    assert float(miou) == pytest.approx(trained['miou'], abs=1e-2)


def test_export_with_config_gives_the_same_files(trained, exported,
                                                 tmp_path):
    out = str(tmp_path / 'again.pth')
    export_tool.main([trained['ckpt'], '--out', out, '--config',
                      trained['cfg']])
    a = torch.load(out, weights_only=True)
    b = torch.load(exported['checkpoint'], weights_only=True)
    assert list(a['state_dict']) == list(b['state_dict'])
    assert all(
        torch.equal(a['state_dict'][k], b['state_dict'][k])
        for k in a['state_dict'])
    assert Config.fromfile(out[:-4] + '.py').model == Config.fromfile(
        exported['config']).model


def test_export_errors(trained, tmp_path):
    with pytest.raises(SystemExit, match='give the checkpoint path'):
        export_tool.main([trained['ckpt'], '--out', str(tmp_path / 'x.py')])
    with pytest.raises(SystemExit, match='checkpoint not found'):
        export_tool.main([str(tmp_path / 'none.pth'), '--out',
                          str(tmp_path / 'x.pth')])
    # a checkpoint without its config needs --config
    bare = str(tmp_path / 'bare.pth')
    state = load_ckpt(trained['ckpt'])['state_dict']
    torch.save(dict(state_dict=state), bare)
    with pytest.raises(SystemExit, match='pass the training config with '
                       '--config'):
        export_tool.main([bare, '--out', str(tmp_path / 'x.pth')])
    with pytest.warns(UserWarning, match="no meta\\['dataset_meta'\\]"):
        export_tool.main([bare, '--out', str(tmp_path / 'bare_out.pth'),
                          '--config', trained['cfg']])
    meta = torch.load(str(tmp_path / 'bare_out.pth'),
                      weights_only=True)['meta']
    assert tuple(meta['dataset_meta']['classes']) == \
        CityscapesDataset.METAINFO['classes']
    # a config that does not match the weights
    cfg = Config.fromfile(trained['cfg'])
    cfg.model.decode_head.channels = 32
    cfg.dump(str(tmp_path / 'other.py'))
    with pytest.raises(SystemExit, match='shape mismatch'):
        export_tool.main([trained['ckpt'], '--out', str(tmp_path / 'x.pth'),
                          '--config', str(tmp_path / 'other.py')])
