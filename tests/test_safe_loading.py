"""Nothing this package loads runs code (issue 22): a checkpoint or a CIFAR
batch whose pickle names ``os.system`` is refused through every entry
point, the refusal names the file and the global, the payload never runs,
and ``MMSEG_INFOPRO_TRUST_CHECKPOINTS=1`` loads a benign checkpoint that
holds another global."""
import fractions
import glob
import io
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from mmseg_infopro.safe_loading import (TRUST_ENV, UnsafeCheckpointError,
                                        load_checkpoint)
from conftest import REPO, demo_cfg

SYSTEM = f'{os.system.__module__}.system'  # posix.system on Linux


class Payload:
    """Unpickling it runs ``touch marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.fixture(scope='module')
def trained(synthetic_root, tmp_path_factory):
    """2 iterations of the K=2 demo: its config file and checkpoint."""
    work = tmp_path_factory.mktemp('safe_train')
    cfg = demo_cfg(synthetic_root, work, max_iters=2)
    Runner.from_cfg(cfg).train()
    [cfg_path] = glob.glob(osp.join(str(work), '*.py'))
    return dict(cfg=cfg_path, ckpt=osp.join(str(work), 'iter_2.pth'))


@pytest.fixture
def payload_ckpt(trained, tmp_path):
    """A real training checkpoint with a code payload in its meta."""
    marker = str(tmp_path / 'MARKER')
    ckpt = torch.load(trained['ckpt'], weights_only=False)
    ckpt['meta']['note'] = Payload(marker)
    path = str(tmp_path / 'payload.pth')
    torch.save(ckpt, path)
    return path, marker


def refused(text, path, name=SYSTEM):
    return path in text and f'`{name}`' in text and TRUST_ENV in text


def run_tool(tool, *args, env=None):
    return subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', tool)] + list(args),
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='1', **(env or {})))


def test_payload_checkpoint_refused_by_mmengine_loaders(payload_ckpt):
    from mmengine.runner.checkpoint import (CheckpointLoader,
                                            _load_checkpoint)
    path, marker = payload_ckpt
    # what the payload does when a checkpoint is loaded without the check
    # (the marker proves the test's payload is live)
    live = marker + '.live'
    torch.save(dict(x=Payload(live)), path + '.live')
    torch.load(path + '.live', weights_only=False)
    assert osp.exists(live)
    for load in (CheckpointLoader.load_checkpoint, _load_checkpoint,
                 load_checkpoint):
        with pytest.raises(UnsafeCheckpointError) as info:
            load(path, map_location='cpu')
        assert refused(str(info.value), path), str(info.value)
        assert info.value.filename == path
        assert info.value.global_name == SYSTEM
    # through a stream (what the s3:// and pavi:// loaders hand torch.load):
    # named by the CheckpointLoader call
    from mmengine.runner import checkpoint
    with open(path, 'rb') as f:
        data = f.read()
    checkpoint.CheckpointLoader.register_scheme(
        'memory://', lambda name, map_location: checkpoint.torch.load(
            io.BytesIO(data), map_location=map_location))
    try:
        with pytest.raises(UnsafeCheckpointError,
                           match='^memory://x: refused'):
            CheckpointLoader.load_checkpoint('memory://x')
    finally:
        del checkpoint.CheckpointLoader._schemes['memory://']
    assert not osp.exists(marker)


def test_payload_checkpoint_refused_from_a_url(payload_ckpt, tmp_path):
    """Pretrained weights named by URL (mmengine's load_from_http, here a
    file:// URL into a fresh download folder)."""
    from mmengine.runner import checkpoint
    path, marker = payload_ckpt
    url = 'file://' + path
    with pytest.raises(UnsafeCheckpointError) as info:
        checkpoint.load_url(url, model_dir=str(tmp_path / 'hub'))
    assert refused(str(info.value), url)
    assert not osp.exists(marker)


def test_payload_checkpoint_refused_by_the_tools(trained, payload_ckpt,
                                                 tmp_path):
    path, marker = payload_ckpt
    # tools/train.py --resume: the latest checkpoint of the work dir
    work = tmp_path / 'resume'
    work.mkdir()
    (work / 'last_checkpoint').write_text(path)
    out = run_tool('train.py', trained['cfg'], '--work-dir', str(work),
                   '--resume')
    assert out.returncode != 0
    assert refused(out.stderr, path), out.stderr[-3000:]
    # tools/test.py CONFIG CKPT
    out = run_tool('test.py', trained['cfg'], path, '--work-dir',
                   str(tmp_path / 'test'))
    assert out.returncode != 0
    assert refused(out.stderr, path), out.stderr[-3000:]
    # tools/export_checkpoint.py CKPT --out OUT
    out = run_tool('export_checkpoint.py', path, '--out',
                   str(tmp_path / 'exported.pth'))
    assert out.returncode != 0
    assert refused(out.stderr, path), out.stderr[-3000:]
    assert not osp.exists(tmp_path / 'exported.pth')
    assert not osp.exists(marker)


def test_trust_switch_loads_a_benign_custom_global(trained, tmp_path,
                                                   monkeypatch):
    """A checkpoint holding a ``fractions.Fraction``: refused by default,
    loaded (and exported) with the switch; the switch is off unless set."""
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmseg_infopro.models.export import export_checkpoint
    ckpt = torch.load(trained['ckpt'], weights_only=False)
    ckpt['meta']['note'] = fractions.Fraction(1, 3)
    path = str(tmp_path / 'custom.pth')
    torch.save(ckpt, path)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint(path)
    assert refused(str(info.value), path, 'fractions.Fraction')
    monkeypatch.setenv(TRUST_ENV, '0')
    with pytest.raises(UnsafeCheckpointError):
        export_checkpoint(path, str(tmp_path / 'out.pth'))
    monkeypatch.setenv(TRUST_ENV, '1')
    with pytest.warns(UserWarning, match=f'{TRUST_ENV}=1: loading {path}'):
        loaded = CheckpointLoader.load_checkpoint(path)
    assert loaded['meta']['note'] == fractions.Fraction(1, 3)
    for key, value in ckpt['state_dict'].items():
        assert torch.equal(loaded['state_dict'][key], value), key
    export_checkpoint(path, str(tmp_path / 'out.pth'))
    assert torch.load(str(tmp_path / 'out.pth'), weights_only=True)
    monkeypatch.setenv(TRUST_ENV, 'maybe')
    with pytest.raises(ValueError, match=f"{TRUST_ENV}='maybe'"):
        CheckpointLoader.load_checkpoint(path)


def test_allowlisted_getattr_only_reaches_history_buffer_methods(tmp_path):
    """mmengine's HistoryBuffer pickles its statistics methods through
    ``getattr``: allowed for those, refused for anything else (a bound
    method of an array)."""
    from mmengine.logging import HistoryBuffer
    path = str(tmp_path / 'hub.pth')
    buffer = HistoryBuffer([1., 2.], [1, 1])
    torch.save(dict(buffer=buffer, rng=np.random.get_state()), path)
    loaded = load_checkpoint(path)
    assert loaded['buffer'].mean() == 1.5
    assert loaded['rng'][0] == 'MT19937'
    np.testing.assert_array_equal(loaded['rng'][1], np.random.get_state()[1])
    torch.save(dict(method=np.zeros(2).tofile), path)
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        load_checkpoint(path)


def test_payload_cifar_batch_is_refused(tmp_path):
    from mmseg_infopro.datasets.classification import (ClsDataFormatError,
                                                       CIFAR10Dataset,
                                                       make_synthetic_cifar10)
    folder = make_synthetic_cifar10(str(tmp_path), 1, 1)
    marker = str(tmp_path / 'MARKER')
    path = osp.join(folder, 'test_batch')
    with open(path, 'wb') as f:
        pickle.dump({b'data': Payload(marker), b'labels': [0]}, f,
                    protocol=2)
    with pytest.raises(ClsDataFormatError) as info:
        CIFAR10Dataset(data_root=str(tmp_path), test_mode=True)
    message = str(info.value)
    assert message.startswith(path) and f'`{SYSTEM}`' in message, message
    assert not osp.exists(marker)
    # the same through the meta file, in the newest pickle protocol
    with open(osp.join(folder, 'batches.meta'), 'wb') as f:
        pickle.dump({'label_names': Payload(marker)}, f,
                    protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(ClsDataFormatError, match='batches.meta: refused'):
        CIFAR10Dataset(data_root=str(tmp_path), test_mode=False)
    assert not osp.exists(marker)
