"""mmseg_infopro.compat (issue 2 item 2): each fix is applied exactly when
the environment needs it."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

from mmseg_infopro import compat

from conftest import REPO


def _fresh_environment():
    """Facts about the environment from a fresh interpreter that never
    imported this package (so no fix can have touched them)."""
    code = textwrap.dedent("""
        import importlib.util, json, sys
        import numpy
        assert 'mmseg_infopro' not in sys.modules
        try:
            import pkg_resources  # noqa: F401
            pkg = True
        except ImportError:
            pkg = False
        print(json.dumps(dict(
            numpy=numpy.__version__,
            numpy_has_in1d=hasattr(numpy, 'in1d'),
            cityscapesscripts=importlib.util.find_spec(
                'cityscapesscripts') is not None,
            pkg_resources=pkg)))
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_applied_fixes_match_this_environment():
    fresh = _fresh_environment()
    expected = []
    mmcv_dir = osp.dirname(importlib.util.find_spec('mmcv').origin)
    if not any(f.startswith('_ext.') for f in os.listdir(mmcv_dir)):
        expected.append('mmcv_lite_ops')  # no compiled extension on disk
    if not fresh['pkg_resources']:
        expected.append('pkg_resources')
    # always: mmengine 0.10.x never asks torch.load for weights_only
    expected.append('safe_checkpoint_load')
    # numpy 2.4 removed np.in1d; cityscapesscripts (CityscapesMetric)
    # still calls it
    numpy_version = tuple(int(v) for v in fresh['numpy'].split('.')[:2])
    assert fresh['numpy_has_in1d'] == (numpy_version < (2, 4)), fresh
    if not fresh['numpy_has_in1d'] and fresh['cityscapesscripts']:
        expected.append('numpy_in1d')
    import numpy as np
    if 'numpy_in1d' in expected:
        # restored with numpy's documented semantics: flattened input
        assert np.in1d([[1, 5], [2, 7]], [5, 7]).tolist() == [
            False, True, False, True]
        assert np.in1d([[1, 5], [2, 7]], [5, 7], invert=True).tolist() == [
            True, False, True, False]
        # the call cityscapesscripts makes, on a 2-D label map
        gt = np.array([[0, 255], [7, 255]])
        assert np.in1d(gt, [255], invert=True).reshape(gt.shape).tolist() \
            == [[True, False], [True, False]]
    else:  # untouched
        assert hasattr(np, 'in1d') == fresh['numpy_has_in1d']
        if hasattr(np, 'in1d'):
            assert np.in1d.__module__ != compat.__name__
    assert compat.APPLIED == expected
    compat.apply()  # idempotent
    assert compat.APPLIED == expected


@pytest.mark.skipif('mmcv_lite_ops' not in compat.APPLIED,
                    reason='full mmcv installed')
def test_compiled_op_with_mmcv_lite_says_install_full_mmcv():
    from mmcv.ops import nms, point_sample
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
    with pytest.raises(compat.MissingCompiledOpError) as info:
        nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
    assert 'nms' in str(info.value) and 'full mmcv' in str(info.value)
    assert 'mim install' in str(info.value)
    # pure-Python parts of mmcv.ops keep working
    out = point_sample(torch.rand(1, 2, 4, 4), torch.rand(1, 3, 2))
    assert out.shape == (1, 2, 3)
    from mmcv.utils import ext_loader
    assert ext_loader.check_ops_exist() is False


def test_mmseg_config_bases_resolve():
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'infopro',
                 'deeplabv3_r101_k2_cityscapes.py'))
    assert cfg.model.backbone.depth == 101  # from the mmseg:: base
    assert cfg.train_dataloader.dataset.data_root == 'data/cityscapes/'


def test_mmengine_checkpoint_loads_under_new_torch(tmp_path):
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint
    path = str(tmp_path / 'ckpt.pth')
    torch.save(dict(state_dict=dict(w=torch.ones(2)),
                    message_hub=dict(
                        buffer=HistoryBuffer([1., 2.], [1, 1]))), path)
    ckpt = _load_checkpoint(path, map_location='cpu')
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))


def test_nothing_is_patched_when_nothing_is_needed():
    """A process where a compiled mmcv._ext is importable, pkg_resources
    exists and numpy has in1d gets no fix but the safe checkpoint loading
    (mmengine 0.10.x never passes weights_only, whatever the torch)."""
    code = textwrap.dedent(f"""
        import importlib.machinery, sys, types
        sys.path.insert(0, {REPO!r})
        ext = types.ModuleType('mmcv._ext')
        ext.__spec__ = importlib.machinery.ModuleSpec(
            'mmcv._ext', importlib.machinery.SourceFileLoader('x', 'x'))
        sys.modules['mmcv._ext'] = ext           # "full mmcv"
        sys.modules['pkg_resources'] = types.ModuleType('pkg_resources')
        import torch
        import numpy
        # "old numpy"
        numpy.in1d = getattr(numpy, 'in1d', None) or (lambda *a: 0)
        import importlib.util  # compat.py alone, not the package
        spec = importlib.util.spec_from_file_location(
            'compat', {osp.join(REPO, 'mmseg_infopro', 'compat.py')!r})
        c = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(c)
        c.apply()
        import mmengine.runner.checkpoint as ck
        print('APPLIED', c.APPLIED, type(ck.torch).__name__)
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "APPLIED ['safe_checkpoint_load'] _TorchWithSafeLoad" in \
        out.stdout, out.stdout


def test_no_mmcv_at_all_gives_install_hint():
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {REPO!r})
        import importlib.util
        real = importlib.util.find_spec
        importlib.util.find_spec = (
            lambda name, *a: None if name == 'mmcv' else real(name, *a))
        import mmseg_infopro
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode != 0
    assert 'ImportError' in out.stderr
    assert 'mmseg-infopro[lite]' in out.stderr
