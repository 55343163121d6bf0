"""Data-parallel InfoPro training with InfoProDistributedDataParallel.

Two gloo processes on the CPU, launched exactly as a user does
(``tools/dist_train.sh`` -> torchrun -> ``tools/train.py --launcher
pytorch``), compared with a single process with the same total batch.
A probe hook (:class:`DistProbeHook`, imported by the runs through
``custom_imports``) gathers every rank's parameters and gradients after each
iteration.
"""
import glob
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import MessageHub

from mmseg.registry import HOOKS, MODELS

from mmseg_infopro.safe_loading import load_checkpoint as load_ckpt
from conftest import DEMO_K2, REPO, demo_cfg, single_thread

TESTS = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.join(REPO, 'tools'))
import test as test_tool  # noqa: E402  (tools/test.py)
import train as train_tool  # noqa: E402  (tools/train.py)

from mmseg_infopro.models.segmentors import InfoProEncoderDecoder  # noqa
from mmseg_infopro.engine import (  # noqa: E402
    InfoProDistributedDataParallel)
from harness.processes import (  # noqa: E402
    HARD_EXIT_NOTE, init_cpu_process_group)


@HOOKS.register_module(force=True)
class DistProbeHook(Hook):
    """After each training iteration, gather all ranks' flat parameters and
    gradients; rank 0 saves, at the end, per iteration: the largest
    parameter difference between ranks, per local module whether gradients
    are present and their largest difference between ranks, and the final
    parameters and validation metrics."""

    def __init__(self, out_file):
        self.out_file = out_file
        self.record = dict(param_diff=[], grad_present=[], grad_diff=[])

    @staticmethod
    def _gather(flat):
        if not (dist.is_available() and dist.is_initialized()):
            return [flat]
        out = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
        dist.all_gather(out, flat)
        return out

    @staticmethod
    def _spread(tensors):
        return max((t - tensors[0]).abs().max().item() for t in tensors)

    def before_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') \
            else runner.model
        self.record['initial'] = torch.cat(
            [p.detach().flatten().clone() for p in model.parameters()])

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        model = runner.model.module if hasattr(runner.model, 'module') \
            else runner.model
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        self.record['param_diff'].append(self._spread(self._gather(flat)))
        present, diffs = [], []
        for local in model.local_modules():
            params = list(local.parameters())
            present.append(any(p.grad is not None for p in params))
            grads = torch.cat([
                (p.grad if p.grad is not None else torch.zeros_like(p)
                 ).detach().flatten() for p in params
            ])
            diffs.append(self._spread(self._gather(grads)))
        self.record['grad_present'].append(present)
        self.record['grad_diff'].append(diffs)

    def after_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') \
            else runner.model
        self.record['params'] = torch.cat(
            [p.detach().flatten() for p in model.parameters()])
        self.record['world_size'] = runner.world_size
        if runner.rank == 0:
            torch.save(self.record, self.out_file)

    def after_val_epoch(self, runner, metrics=None):
        # the last validation runs before after_train
        self.record['metrics'] = dict(metrics or {})


def gather_spread(tensors):
    """Largest difference between ranks of the flattened ``tensors`` (0.0
    without a process group)."""
    flat = torch.cat([t.detach().double().flatten() for t in tensors])
    return DistProbeHook._spread(DistProbeHook._gather(flat))


@MODELS.register_module(force=True)
class FrozenFirstModuleInfoPro(InfoProEncoderDecoder):
    """An InfoProEncoderDecoder whose local module 0 (backbone stem, layer1,
    layer2 and local head 0) has no trainable parameter:
    ``requires_grad=False`` on all of them, while its BN layers stay in
    train mode, so each rank's batch moves their running statistics. At
    build time each rank offsets module 0's BN running means and its
    parameters by its rank, as if the ranks had loaded different states."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        rank = dist.get_rank() if dist.is_initialized() else 0
        module = self.local_modules()[0]
        with torch.no_grad():
            for param in module.parameters():
                param.requires_grad_(False)
                param.add_(0.01 * rank)
            for m in module.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.running_mean.add_(rank)


@HOOKS.register_module(force=True)
class FrozenModuleProbeHook(Hook):
    """Records, as the largest difference between ranks, local module 0's
    parameters and buffers right after the model wrapper was built
    (``before_run``: before mmengine's own broadcast after
    ``init_weights``); its buffers at the start of every forward of
    module 0 (a forward pre-hook on the stem: after the wrapper's
    broadcast), in training and in validation; and its buffers after each
    training iteration, with whether they changed."""

    def __init__(self, out_file):
        self.out_file = out_file
        self.record = dict(train_forward=[], val_forward=[], after_iter=[],
                           changed=[])
        self._last = None

    @staticmethod
    def _module0(runner):
        model = runner.model.module if hasattr(runner.model, 'module') \
            else runner.model
        return model, model.local_modules()[0]

    def before_run(self, runner):
        model, module = self._module0(runner)
        self.record['built_params'] = gather_spread(list(module.parameters()))
        self.record['built_buffers'] = gather_spread(list(module.buffers()))
        self.record['wrapped_as'] = [
            type(m).__name__ for m in getattr(runner.model, 'local_ddps', [])
        ]
        model.backbone.stem.register_forward_pre_hook(self._at_forward)
        self.runner = runner

    def _at_forward(self, stem, args):
        _, module = self._module0(self.runner)
        key = 'train_forward' if stem.training else 'val_forward'
        self.record[key].append(gather_spread(list(module.buffers())))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        _, module = self._module0(runner)
        flat = torch.cat([b.double().flatten() for b in module.buffers()])
        self.record['after_iter'].append(gather_spread([flat]))
        self.record['changed'].append(
            self._last is not None and not torch.equal(flat, self._last))
        self._last = flat.clone()

    def after_train(self, runner):
        if runner.rank == 0:
            torch.save(self.record, self.out_file)


@pytest.fixture(autouse=True)
def cpu_only(monkeypatch):
    """These tests are about gloo on the CPU; on a GPU machine keep the
    in-process runs on the CPU too (mmengine fixes its device at import;
    the torchrun workers get ``CUDA_VISIBLE_DEVICES=''``)."""
    import mmengine.runner.runner as runner_module

    import mmseg_infopro.engine.distributed as ddp_module
    for module in (runner_module, ddp_module):
        monkeypatch.setattr(module, 'get_device', lambda: 'cpu')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def own_visualizer(cfg):
    """mmseg's runtime names its visualizer 'visualizer', and mmengine
    reuses an existing instance of that name, with the save_dir of the
    first runner in the process: give in-process runs their own."""
    cfg.visualizer.name = f'visualizer_{cfg.work_dir}'
    return cfg


def probe_cfg(root, work_dir, batch_size, group_norm, max_iters=4):
    """The K=2 demo with the probe hook. ``group_norm``: GroupNorm instead
    of BN, no dropout, no random flip, no shuffling, so that a batch split
    over processes computes exactly what one process computes."""
    cfg = demo_cfg(root, work_dir, max_iters=max_iters)
    cfg.custom_imports = dict(
        imports=['mmseg_infopro', 'test_distributed'],
        allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='DistProbeHook', out_file=osp.join(str(work_dir),
                                                     'probe.pt'))
    ]
    cfg.train_dataloader.batch_size = batch_size
    own_visualizer(cfg)
    if group_norm:
        gn = dict(type='GN', num_groups=1, requires_grad=True)
        model = cfg.model
        model.backbone.norm_cfg = gn
        model.decode_head.norm_cfg = gn
        model.decode_head.dropout_ratio = 0.
        model.auxiliary_head.norm_cfg = gn
        model.auxiliary_head.dropout_ratio = 0.
        model.local_heads[0].norm_cfg = gn
        model.local_heads[0].task_head.dropout_ratio = 0.
        pipeline = [
            t for t in cfg.train_dataloader.dataset.pipeline
            if t['type'] != 'RandomFlip'
        ]
        cfg.train_dataloader.dataset.pipeline = pipeline
        cfg.train_dataloader.sampler.shuffle = False
    return cfg


def launch(cfg, work_dir, nproc=2, timeout=240):
    """Run ``tools/dist_train.sh`` on ``cfg`` (gloo, one thread per
    process); returns the finished ``subprocess.CompletedProcess``."""
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(str(work_dir), 'cfg.py')
    cfg.dump(path)
    env = dict(os.environ)
    env.update(
        PORT=str(free_port()),
        PYTHON=sys.executable,
        OMP_NUM_THREADS='1',
        CUDA_VISIBLE_DEVICES='',
        PYTHONPATH=os.pathsep.join(
            [REPO, TESTS, env.get('PYTHONPATH', '')]))
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), path,
         str(nproc)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    return proc


def dist_train(cfg, work_dir, nproc=2, timeout=240, out_file='probe.pt'):
    """Run ``tools/dist_train.sh`` on ``cfg``; returns the probe record.
    Every rank must end normally (not through the os._exit fallback)."""
    proc = launch(cfg, work_dir, nproc, timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert HARD_EXIT_NOTE not in proc.stderr, proc.stderr[-3000:]
    return torch.load(osp.join(str(work_dir), out_file), weights_only=False)


def single_train(cfg, work_dir):
    """The same training in this process (launcher none)."""
    path = osp.join(str(work_dir), 'cfg.py')
    os.makedirs(work_dir, exist_ok=True)
    cfg.dump(path)
    with single_thread():
        train_tool.main([path])
    return torch.load(osp.join(str(work_dir), 'probe.pt'),
                      weights_only=False)


def test_two_processes_match_one(synthetic_root, tmp_path):
    """2 processes x 2 images == 1 process x 4 images, with gradient
    accumulation 2 and gradient clipping, 4 iterations (2 optimizer steps).

    Why GroupNorm: with BN, each process normalises with the statistics of
    its own 2 images while the single process uses all 4, so the forward
    (and every gradient) differs and no comparison is meaningful. BN in
    eval mode (running statistics) is not the BN that trains, and the
    runner puts the model in train mode every iteration. GroupNorm (one
    group) keeps a
    trainable norm after every conv but is per-sample, so a batch split
    over processes computes exactly the single-process result; dropout,
    random flip and shuffling are switched off for the same reason. (The
    BN demo is covered by :func:`test_bn_distributed_validation`.)

    Checks, per iteration: parameters identical on both ranks; during the
    accumulation iteration every local module has gradients and they differ
    between ranks (``no_sync`` entered every module's DDP: no all-reduce);
    after the update iteration gradients are cleared. At the end: the
    parameters equal the single-process run's within float tolerance, the
    checkpoints have the same keys, and distributed validation (one val
    image per rank) gives the same metrics as single-process validation.
    """
    def cfg(name, batch_size):
        cfg = probe_cfg(synthetic_root, tmp_path / name, batch_size, True)
        cfg.optim_wrapper.accumulative_counts = 2
        cfg.optim_wrapper.clip_grad = dict(max_norm=0.5)
        return cfg

    dist_rec = dist_train(cfg('dist', 2), tmp_path / 'dist')
    single_rec = single_train(cfg('single', 4), tmp_path / 'single')
    # the gloo ranks end normally (harness.processes.shutdown_process_group
    # joins gloo's threads: no os._exit fallback), exit code 0 above, and
    # rank 0's log holds the final validation
    log = sorted(glob.glob(str(tmp_path / 'dist' / '2*' / '2*.log')))[-1]
    with open(log) as f:
        assert any('Iter(val)' in line and 'mIoU' in line
                   for line in f.readlines()[-3:])

    assert dist_rec['world_size'] == 2 and single_rec['world_size'] == 1
    # identical on both ranks after every iteration
    assert dist_rec['param_diff'] == [0.0] * 4
    # accumulation iterations (0, 2): local gradients, not all-reduced, in
    # every local module; update iterations (1, 3): cleared by zero_grad
    assert dist_rec['grad_present'] == [[True, True], [False, False]] * 2
    for it in (0, 2):
        assert all(d > 0 for d in dist_rec['grad_diff'][it]), dist_rec
    # clipping really acted (otherwise the test would not cover it)
    assert MessageHub.get_current_instance().get_scalar(
        'train/grad_norm').current() > 0.5
    # same result as one process with the whole batch
    torch.testing.assert_close(
        dist_rec['params'], single_rec['params'], rtol=1e-5, atol=1e-6)
    # ... starting from the same weights, which training changed
    torch.testing.assert_close(dist_rec['initial'], single_rec['initial'])
    assert not torch.allclose(dist_rec['params'], dist_rec['initial'])
    # checkpoint keys: the segmentor's, no wrapper prefix
    keys = [
        list(load_ckpt(tmp_path / run / 'iter_4.pth')
             ['state_dict']) for run in ('dist', 'single')
    ]
    assert keys[0] == keys[1]
    assert not any(k.startswith('module.') for k in keys[0])
    metrics_d, metrics_s = dist_rec['metrics'], single_rec['metrics']
    assert set(metrics_d) == set(metrics_s) and 'mIoU' in metrics_d
    for key in metrics_s:
        assert metrics_d[key] == pytest.approx(metrics_s[key], abs=0.02), key


def test_bn_distributed_validation(synthetic_root, tmp_path):
    """The BN demo as configured (BN, dropout, flip, shuffling), 2
    processes: parameters identical on both ranks after every iteration, and
    the distributed validation at the end gives exactly the metrics that a
    single process computes from the saved checkpoint (rank 0's BN running
    statistics are given to every rank before inference)."""
    work = tmp_path / 'bn'
    rec = dist_train(probe_cfg(synthetic_root, work, 2, False, max_iters=2),
                     work)
    assert rec['param_diff'] == [0.0, 0.0]
    cfg = own_visualizer(demo_cfg(synthetic_root, tmp_path / 'test'))
    path = str(tmp_path / 'test_cfg.py')
    cfg.dump(path)
    with single_thread():
        metrics = test_tool.main([path, str(work / 'iter_2.pth')])
    assert set(metrics) == set(rec['metrics'])
    for key, value in metrics.items():
        assert rec['metrics'][key] == pytest.approx(value, abs=1e-6), key


def test_default_ddp_without_wrapper_cfg_fails_with_hint(synthetic_root,
                                                         tmp_path):
    """Issue 11 item 2: the K=2 demo without its ``model_wrapper_cfg`` line,
    2 processes. mmengine's default MMDistributedDataParallel trains through
    ``forward(mode='loss')`` (every module's graph alive at once: no
    saving); the run must stop, and say which line to add."""
    cfg = demo_cfg(synthetic_root, tmp_path / 'nowrap', max_iters=2)
    own_visualizer(cfg)
    cfg.pop('model_wrapper_cfg')
    proc = launch(cfg, tmp_path / 'nowrap')
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    hint = "model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')"
    assert hint in output, output[-5000:]
    assert not osp.exists(tmp_path / 'nowrap' / 'iter_2.pth')


def test_frozen_module_buffers_agree_across_ranks(synthetic_root, tmp_path):
    """Issue 11 item 3: a local module without trainable parameters (module
    0 frozen, BN in train mode) gets no DDP; its parameters and buffers
    must still agree on all ranks: broadcast from rank 0 when the wrapper
    is built, again at the start of every training forward
    (broadcast_buffers, as DDP), and after training, before the
    validation forward."""
    work = tmp_path / 'frozen'
    cfg = demo_cfg(synthetic_root, work, max_iters=3)
    own_visualizer(cfg)
    cfg.model.type = 'FrozenFirstModuleInfoPro'
    cfg.custom_imports = dict(
        imports=['mmseg_infopro', 'test_distributed'],
        allow_failed_imports=False)
    cfg.custom_hooks = [
        dict(type='FrozenModuleProbeHook', out_file=str(work / 'frozen.pt'))
    ]
    rec = dist_train(cfg, work, out_file='frozen.pt')
    # the ranks were built different (the model offsets them by rank), the
    # wrapper gave them rank 0's parameters and buffers
    assert rec['built_params'] == 0.0 and rec['built_buffers'] == 0.0, rec
    # BN in train mode moves the statistics, with each rank's batch ...
    assert rec['changed'] == [False, True, True]
    assert all(d > 0 for d in rec['after_iter']), rec
    # ... and every training forward starts from rank 0's, and so does
    # the validation after training
    assert rec['train_forward'] == [0.0] * 3, rec
    assert len(rec['val_forward']) == 1 and rec['val_forward'][0] == 0.0, rec
    assert rec['wrapped_as'] == ['BufferSyncedModule',
                                 'DistributedDataParallel']


# --------------------------------------------------------- wrapper alone


def build_demo_model(**model_overrides):
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO_K2)
    cfg.merge_from_dict({f'model.{k}': v for k, v in model_overrides.items()})
    return MODELS.build(cfg.model)


@pytest.fixture
def one_process_group():
    """A world_size=1 gloo group in this process, destroyed afterwards (a
    group left behind would make later runners distributed)."""
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()),
                      RANK='0', WORLD_SIZE='1', LOCAL_RANK='0')
    try:
        assert init_cpu_process_group('pytorch')
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        for key in ('MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE'):
            os.environ.pop(key, None)


def test_stray_trainable_parameter_is_named():
    """A trainable parameter outside every local module is rejected at
    wrap time, by name (checked before any DDP, so no process group)."""
    model = build_demo_model()
    model.stray_scale = nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match=r'stray_scale \(in no local'):
        InfoProDistributedDataParallel(model)
    # a frozen one is fine for the check
    model.stray_scale.requires_grad_(False)
    model.local_heads[0].task_head.extra = model.decode_head.conv_seg
    with pytest.raises(ValueError, match=r'conv_seg.weight \(in local '
                       r'modules \[0, 1\]\)'):
        InfoProDistributedDataParallel(model)


def test_wrapper_structure(one_process_group):
    """Registered in mmengine's root MODEL_WRAPPERS and found from mmseg's
    scope; one DDP per local module; ``no_sync`` enters all of them;
    checkpoint keys unchanged; SyncBN becomes BN on the CPU; every config
    sets the wrapper."""
    from mmengine.config import Config
    from mmengine.model import is_model_wrapper
    from mmengine.registry import MODEL_WRAPPERS, DefaultScope
    from torch.nn.parallel import DistributedDataParallel

    sync_bn = dict(type='SyncBN', requires_grad=True)
    model = build_demo_model(**{'backbone.norm_cfg': sync_bn,
                                'decode_head.norm_cfg': sync_bn})
    keys = list(model.state_dict().keys())
    with DefaultScope.overwrite_default_scope('mmseg'):
        wrapper = MODEL_WRAPPERS.build(
            dict(type='InfoProDistributedDataParallel',
                 find_unused_parameters=False),
            default_args=dict(module=model))
    assert is_model_wrapper(wrapper) and wrapper.module is model
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    assert list(wrapper.module.state_dict().keys()) == keys
    assert list(wrapper.state_dict().keys()) == ['module.' + k for k in keys]
    assert len(wrapper.local_ddps) == 2
    assert all(
        isinstance(d, DistributedDataParallel) for d in wrapper.local_ddps)
    with wrapper.no_sync():
        assert not any(d.require_backward_grad_sync
                       for d in wrapper.local_ddps)
    assert all(d.require_backward_grad_sync for d in wrapper.local_ddps)
    wrapper.eval()
    assert not model.training and not wrapper.local_ddps[0].training
    wrapper.train()

    for folder in ('infopro', 'demo'):
        for name in sorted(os.listdir(osp.join(REPO, 'configs', folder))):
            cfg = Config.fromfile(osp.join(REPO, 'configs', folder, name))
            assert cfg.model_wrapper_cfg.type == \
                'InfoProDistributedDataParallel', name


def test_frozen_local_module_is_buffer_synced(one_process_group):
    """A local module without trainable parameters is wrapped in a
    BufferSyncedModule (DDP refuses it), which follows DDP's buffer rules:
    ``no_sync`` enters it, a forward inside ``no_sync`` (or without grad)
    makes the next forward skip its broadcast, and ``broadcast_buffers=
    False`` switches the broadcasts off."""
    from torch.nn.parallel import DistributedDataParallel

    from mmseg_infopro.engine.distributed import BufferSyncedModule
    model = build_demo_model()
    for param in model.local_modules()[0].parameters():
        param.requires_grad_(False)
    wrapper = InfoProDistributedDataParallel(model)
    frozen, last = wrapper.local_ddps
    assert isinstance(frozen, BufferSyncedModule)
    assert isinstance(last, DistributedDataParallel)
    assert frozen.broadcast_buffers and frozen.require_forward_param_sync
    with wrapper.no_sync():
        assert not frozen.require_backward_grad_sync
        assert not last.require_backward_grad_sync
    assert frozen.require_backward_grad_sync
    # DDP's require_forward_param_sync, on a frozen BN in train mode
    bn = nn.BatchNorm2d(3).requires_grad_(False)
    synced = BufferSyncedModule(bn)
    x = torch.randn(2, 3, 4, 4)
    with synced.no_sync():
        synced(x)
    assert not synced.require_forward_param_sync
    synced(x)
    assert synced.require_forward_param_sync
    with torch.no_grad():
        synced(x)
    assert not synced.require_forward_param_sync
    assert bn.num_batches_tracked.item() == 3
    off = InfoProDistributedDataParallel(model, broadcast_buffers=False)
    assert not off.local_ddps[0].broadcast_buffers


def test_cpu_default_model_wrapper():
    """A CPU run without ``model_wrapper_cfg`` gets mmengine's default
    wrapper without ``device_ids`` (which torch rejects for CPU modules);
    a config that sets a wrapper is left alone."""
    from mmengine.config import Config

    from harness.processes import cpu_default_model_wrapper
    cfg = Config.fromfile(DEMO_K2)
    assert not cpu_default_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(type='InfoProDistributedDataParallel')
    cfg.pop('model_wrapper_cfg')
    cfg.find_unused_parameters = True
    assert cpu_default_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel', device_ids=None,
        broadcast_buffers=False, find_unused_parameters=True)
