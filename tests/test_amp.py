"""AMP: ``--amp`` in tools/train.py, and InfoPro's loss scaling with
mmengine's ``AmpOptimWrapper`` flow (scaled local losses, skipped steps on
inf/NaN gradients).

mmengine's ``AmpOptimWrapper`` asserts a GPU at construction, so the CPU
tests run its own ``backward``/``step``/``update_params`` with a
``torch.amp.GradScaler('cpu')`` and no autocast (fp32): the loss-scaling
logic is the same, and fp32 makes results comparable exactly. The same
checks with the real ``AmpOptimWrapper`` (fp16 autocast) run on a GPU.
"""
import copy
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from conftest import DEMO_K2, REPO, demo_cfg

sys.path.insert(0, osp.join(REPO, 'tools'))
import train as train_tool  # noqa: E402  (tools/train.py)

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA GPU')


# single-threaded (conftest.one_thread) for every test here
pytestmark = pytest.mark.usefixtures('one_thread')


class CPUScalerOptimWrapper(AmpOptimWrapper):
    """``AmpOptimWrapper`` without its GPU assertion: the loss scaler is a
    ``torch.amp.GradScaler('cpu')`` and there is no autocast. ``backward``,
    ``step`` (unscale, clip, ``scaler.step``, ``scaler.update``) and
    ``update_params`` are AmpOptimWrapper's own."""

    def __init__(self, optimizer, init_scale=2.**16, **kwargs):
        OptimWrapper.__init__(self, optimizer=optimizer, **kwargs)
        self._scale_update_param = None
        self.cast_dtype = None
        self.loss_scaler = torch.amp.GradScaler('cpu', init_scale=init_scale)

    optim_context = OptimWrapper.optim_context  # fp32: no autocast


def build_model(device='cpu'):
    init_default_scope('mmseg')
    cfg = Config.fromfile(DEMO_K2)
    cfg.model.data_preprocessor.size = (64, 128)
    return MODELS.build(cfg.model).to(device).train()


def make_batch(n=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(
            torch.randint(0, 256, (3, 64, 128), generator=gen,
                          dtype=torch.uint8))
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, 19, (1, 64, 128), generator=gen))
        sample.set_metainfo(
            dict(img_shape=(64, 128), pad_shape=(64, 128),
                 ori_shape=(64, 128)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def params(model):
    return [p.detach().clone() for p in model.parameters()]


def test_loss_scaled_steps_equal_fp32_steps():
    """With a loss scaler (fp32 otherwise), accumulation 2 and clipping,
    InfoPro steps give the plain OptimWrapper's parameters: the local
    losses are scaled like the last module's (a local loss left unscaled
    would have its gradients divided by the scale at ``unscale_``)."""
    model = build_model()
    ref = copy.deepcopy(model)
    batches = [make_batch(seed=s) for s in range(4)]
    kwargs = dict(accumulative_counts=2, clip_grad=dict(max_norm=1.0))
    wrappers = [OptimWrapper(sgd(ref), **kwargs),
                CPUScalerOptimWrapper(sgd(model), init_scale=2.**12,
                                      **kwargs)]
    initial = params(model)
    for net, wrapper in zip((ref, model), wrappers):
        torch.manual_seed(0)  # same dropout masks
        for batch in batches:
            net.train_step(copy.deepcopy(batch), wrapper)
    scaler = wrappers[1].loss_scaler
    assert scaler.get_scale() == 2.**12  # no overflow, no growth yet
    torch.testing.assert_close(params(model), params(ref))
    assert any(not torch.equal(p0, p1)
               for p0, p1 in zip(initial, params(model)))


def check_overflow(model, wrapper, accumulative_counts, scale):
    """Make one parameter of local module 0 (the stem) get an inf gradient
    in the first iteration, then train one more update normally."""
    stem = next(model.backbone.module_parts(0)[0].parameters())
    batches = [make_batch(seed=s) for s in range(2 * accumulative_counts)]
    before = params(model)
    handle = stem.register_hook(lambda g: torch.full_like(g, float('inf')))
    for i in range(accumulative_counts):
        model.train_step(copy.deepcopy(batches[i]), wrapper)
        handle.remove()
    # the step was skipped for the whole model, not only module 0 ...
    assert all(torch.equal(p0, p1) for p0, p1 in zip(before, params(model)))
    assert not wrapper.optimizer.state  # no momentum: no step happened
    # ... the scale went down, and zero_grad cleared every module's
    # gradients (a left-over inf would make the next update skip too)
    assert wrapper.loss_scaler.get_scale() == scale / 2
    assert all(p.grad is None for p in model.parameters())
    after_skip = params(model)
    for i in range(accumulative_counts, 2 * accumulative_counts):
        model.train_step(copy.deepcopy(batches[i]), wrapper)
    # the next update is a normal one
    after = params(model)
    assert any(not torch.equal(p0, p1) for p0, p1 in zip(after_skip, after))
    assert all(torch.isfinite(p).all() for p in after)
    assert wrapper.loss_scaler.get_scale() == scale / 2


@pytest.mark.parametrize('accumulative_counts', [1, 2])
def test_skipped_step_clears_all_gradients_cpu(accumulative_counts):
    """An inf gradient in local module 0 only: ``GradScaler.step`` skips
    the optimizer step for the whole model, ``update`` halves the scale,
    ``zero_grad`` clears every module's gradients, and the next step is a
    normal one (with accumulation: the overflow happens in an accumulating
    iteration and is caught at the update)."""
    model = build_model()
    wrapper = CPUScalerOptimWrapper(
        sgd(model), init_scale=2.**10, clip_grad=dict(max_norm=1.0),
        accumulative_counts=accumulative_counts)
    check_overflow(model, wrapper, accumulative_counts, 2.**10)


@requires_cuda
@pytest.mark.parametrize('accumulative_counts', [1, 2])
def test_skipped_step_clears_all_gradients_gpu(accumulative_counts):
    """The same with mmengine's AmpOptimWrapper (fp16 autocast)."""
    model = build_model('cuda')
    wrapper = AmpOptimWrapper(
        optimizer=sgd(model), loss_scale=dict(init_scale=2.**10),
        clip_grad=dict(max_norm=1.0),
        accumulative_counts=accumulative_counts)
    check_overflow(model, wrapper, accumulative_counts, 2.**10)


# ---------------------------------------------------------- tools/train.py


def write_cfg(root, tmp_path, **overrides):
    cfg = demo_cfg(root, tmp_path / 'work', max_iters=2, **overrides)
    # not mmseg's shared 'visualizer' instance (it keeps the save_dir of
    # the first runner in the process)
    cfg.visualizer.name = f'visualizer_{cfg.work_dir}'
    path = str(tmp_path / 'cfg.py')
    cfg.dump(path)
    return path


def test_amp_flag_sets_dynamic_amp_optim_wrapper(synthetic_root, tmp_path):
    """``--amp`` turns OptimWrapper into AmpOptimWrapper with dynamic loss
    scaling, like mmseg's tools/train.py."""
    args = train_tool.parse_args(
        [write_cfg(synthetic_root, tmp_path), '--amp'])
    cfg = train_tool.build_cfg(args)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
@pytest.mark.parametrize('how', ['flag', 'config'])
def test_amp_on_cpu_fails_at_start(synthetic_root, tmp_path, how):
    """Without a GPU, ``--amp`` (or AmpOptimWrapper in the config) stops
    before anything is built, with a message that says why and what to do
    instead."""
    if how == 'flag':
        argv = [write_cfg(synthetic_root, tmp_path), '--amp']
    else:
        argv = [
            write_cfg(synthetic_root, tmp_path,
                      **{'optim_wrapper.type': 'AmpOptimWrapper'})
        ]
    with pytest.raises(RuntimeError,
                       match=r'AMP training .* needs a GPU.*without --amp'):
        train_tool.main(argv)
    assert not osp.exists(tmp_path / 'work')  # nothing was started


@requires_cuda
def test_amp_training_on_gpu(synthetic_root, tmp_path):
    """``tools/train.py --amp`` on the K=2 demo on one GPU."""
    runner = train_tool.main([write_cfg(synthetic_root, tmp_path), '--amp'])
    assert isinstance(runner.optim_wrapper, AmpOptimWrapper)
    assert runner.iter == 2
    assert runner.optim_wrapper.loss_scaler.get_scale() > 0
