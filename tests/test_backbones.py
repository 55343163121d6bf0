"""The cut-able backbone contract on every family (issue 9): ResNet,
ResNetV1c, ResNetV1d, ResNeXt, ResNeSt, MiT (SegFormer), Swin (UPerNet).

Small widths and depths, real mmseg code, real tensors:

* K=1 is mmseg's stock model exactly, after one optimizer step;
* isolation both ways at K=2 (the local loss reaches only module 1, the
  final loss only module 2), and no orphan parameter (every trainable
  parameter is trained by exactly one module's loss, e.g. Swin's output
  norms read only by the final heads);
* the export loads with strict keys into the stock model and gives the
  same logits;
* peak memory K=2 < K=1 (MemTracker).
"""
import copy

import pytest
import torch
from mmengine.config import Config, ConfigDict

from mmseg.registry import MODELS
from mmseg_infopro.models.backbones import (INFOPRO_TWINS, CuttableBackbone,
                                            normalize_blocks)
from mmseg_infopro.memory.tracking import measure_step_memory

from conftest import export_model
from test_invariants import build, make_batch, max_diff, sgd


H, W = 64, 128
BN = dict(type='BN', requires_grad=True)
PRE = dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
           seg_pad_val=255, size=(H, W))


def _fcn(in_channels, in_index, channels=16, weight=1.0):
    return dict(type='FCNHead', in_channels=in_channels, in_index=in_index,
                channels=channels, num_convs=1, concat_input=False,
                num_classes=19, norm_cfg=BN, dropout_ratio=0.,
                loss_decode=dict(type='CrossEntropyLoss',
                                 loss_weight=weight))


def _resnet(type_, depth=18, **kw):
    expansion = 1 if depth < 50 else 4
    chans = [8 * 2**i * expansion for i in range(4)]
    return dict(
        # zero_init_residual=False: a zero-initialised last BN would
        # give the rest of each residual branch no gradient at step 1
        backbone=dict(type=type_, depth=depth, base_channels=8,
                      stem_channels=8, norm_cfg=BN,
                      zero_init_residual=False, **kw),
        decode_head=_fcn(chans[3], 3),
        auxiliary_head=_fcn(chans[2], 2, weight=0.4),
        cut=(3, 0))


FAMILIES = {
    'ResNet': _resnet('InfoProResNet'),
    'ResNetV1c': _resnet('InfoProResNetV1c'),
    'ResNetV1d': _resnet('InfoProResNetV1d'),
    'ResNeXt': _resnet('InfoProResNeXt', depth=50, groups=2, base_width=4),
    'ResNeSt': _resnet('InfoProResNeSt', depth=50, radix=2),
    'MiT': dict(
        backbone=dict(type='InfoProMixVisionTransformer', embed_dims=8,
                      num_layers=[1, 2, 2, 1], num_heads=[1, 2, 2, 4],
                      sr_ratios=[4, 2, 1, 1], drop_path_rate=0.),
        decode_head=dict(type='SegformerHead', in_channels=[8, 16, 16, 32],
                         in_index=[0, 1, 2, 3], channels=16, num_classes=19,
                         norm_cfg=BN, dropout_ratio=0.),
        cut=(2, 1)),  # inside stage 2: tokens cross the cut
    'Swin': dict(
        backbone=dict(type='InfoProSwinTransformer', embed_dims=8,
                      depths=[1, 2, 2, 1], num_heads=[1, 2, 2, 4],
                      window_size=4, drop_path_rate=0.,
                      use_abs_pos_embed=True, pretrain_img_size=(H, W)),
        decode_head=dict(type='UPerHead', in_channels=[8, 16, 32, 64],
                         in_index=[0, 1, 2, 3], channels=16,
                         pool_scales=(1, 2), num_classes=19, norm_cfg=BN,
                         dropout_ratio=0.),
        auxiliary_head=_fcn(32, 2, weight=0.4),
        cut=(3, 0)),  # after stage 2's patch merging
}


def model_cfg(family, cuts=(), **local_head):
    spec = copy.deepcopy(FAMILIES[family])
    cut = spec.pop('cut')
    cfg = dict(type='InfoProEncoderDecoder', data_preprocessor=PRE,
               test_cfg=dict(mode='whole'), **spec)
    cfg['backbone']['split_points'] = [cut] if cuts == 'default' else \
        list(cuts)
    if cfg['backbone']['split_points']:
        cfg['local_heads'] = dict(
            dict(task_head=dict(channels=16, dropout_ratio=0.),
                 recons_head=dict(channels=(8, 8, 8)), norm_cfg=BN),
            **local_head)
    return ConfigDict(cfg)


def stock_cfg(cfg):
    cfg = copy.deepcopy(cfg)
    cfg.type = 'EncoderDecoder'
    cls = MODELS.get(cfg.backbone.type)
    cfg.backbone.type = cls.plain_type
    for key in ('split_points', 'checkpoint_blocks',
                'selective_checkpoint_blocks'):
        cfg.backbone.pop(key, None)
    cfg.pop('local_heads', None)
    return cfg


@pytest.fixture(autouse=True)
def _one_thread_mmseg_scope(one_thread):
    from mmengine.registry import DefaultScope, init_default_scope
    if DefaultScope.get_current_instance() is None:
        init_default_scope('mmseg')
    yield


def test_every_family_is_registered_with_its_stock_twin():
    for family in FAMILIES:
        cls = MODELS.get(FAMILIES[family]['backbone']['type'])
        assert issubclass(cls, CuttableBackbone)
        assert issubclass(cls, MODELS.get(cls.plain_type))
        assert INFOPRO_TWINS[cls.plain_type] == cls.__name__
    assert set(INFOPRO_TWINS) >= {
        'ResNet', 'ResNetV1c', 'ResNetV1d', 'ResNeXt', 'ResNeSt',
        'MixVisionTransformer', 'SwinTransformer'}


@pytest.mark.parametrize('family', list(FAMILIES))
def test_k1_equals_the_stock_model_after_a_step(family):
    cfg = model_cfg(family)
    ours = build(cfg)
    stock = MODELS.build(stock_cfg(cfg))
    stock.load_state_dict(ours.state_dict(), strict=True)
    assert list(stock.state_dict()) == list(ours.state_dict())
    batch = make_batch()
    opt_ours, opt_stock = sgd(ours), sgd(stock)
    torch.manual_seed(3)
    log_ours = ours.train_step(batch, opt_ours)
    torch.manual_seed(3)
    log_stock = stock.train_step(batch, opt_stock)
    assert set(log_ours) == set(log_stock)
    for key in log_stock:
        assert torch.equal(log_ours[key], log_stock[key]), key
    for (name, a), b in zip(ours.named_parameters(), stock.parameters()):
        assert torch.equal(a, b), name
    # the step moved the weights (the comparison is not between two
    # untouched models)
    fresh = build(cfg)
    assert max_diff(fresh.parameters(), ours.parameters()) > 1e-4


@pytest.mark.parametrize('family', list(FAMILIES))
def test_k2_isolation_both_ways_and_no_orphans(family):
    """Module 1's gradient is d(local loss)/d(theta_1) and the final loss
    does not reach it; module 2's is d(final loss)/d(theta_2) and the local
    loss does not reach it. Every trainable parameter belongs to exactly
    one module and gets a non-zero gradient."""
    check_k2_isolation(model_cfg(family, 'default'), family)


def check_k2_isolation(cfg, what):
    """The checks of :func:`test_k2_isolation_both_ways_and_no_orphans` on
    the K=2 model of ``cfg``."""
    model = build(cfg)
    first, last = model.local_modules()
    ids = [{id(p) for p in m.parameters()} for m in (first, last)]
    assert not ids[0] & ids[1]
    assert ids[0] | ids[1] == {id(p) for p in model.parameters()}
    optim = sgd(model, accumulative_counts=2)  # first step: no update
    torch.manual_seed(5)
    model.train_step(make_batch(), optim)
    got = [[p.grad.clone() for p in m.parameters() if p.requires_grad]
           for m in (first, last)]
    orphans = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not orphans, orphans

    model.zero_grad()
    torch.manual_seed(5)
    data = model.data_preprocessor(make_batch(), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    local = sum(v for k, v in losses.items() if k.startswith('s1.loss'))
    final = sum(v for k, v in losses.items()
                if k.startswith(('decode.loss', 'aux.loss')))
    for k, module in enumerate((first, last)):
        params = [p for p in module.parameters() if p.requires_grad]
        for j, loss in enumerate((local, final)):
            grads = torch.autograd.grad(loss / 2, params, retain_graph=True,
                                        allow_unused=True)
            if j == k:
                assert max_diff(got[k], grads) < 1e-5, (what, k)
            else:
                assert all(g is None or not g.any() for g in grads), \
                    (what, k, j)


@pytest.mark.parametrize('family', list(FAMILIES))
def test_export_loads_strict_into_the_stock_model(family, tmp_path):
    cfg = model_cfg(family, 'default')
    # a budget plan's checkpointing: training only, gone in the export
    stem = [] if family == 'MiT' else ['stem']  # MiT has no stem unit
    cfg.backbone.checkpoint_blocks = stem + [(1, 0)]
    cfg.backbone.selective_checkpoint_blocks = [(2, 0)]
    model = build(cfg)
    model.train_step(make_batch(), sgd(model))  # BN statistics move
    model.eval()
    out = export_model(model, cfg, tmp_path)
    assert any(k.startswith('local_heads.') for k in out['dropped'])
    plain_cfg = Config.fromfile(out['config'])
    assert plain_cfg.model.type == 'EncoderDecoder'
    assert plain_cfg.model.backbone.type == \
        MODELS.get(cfg.backbone.type).plain_type
    for key in ('split_points', 'checkpoint_blocks',
                'selective_checkpoint_blocks'):
        assert key not in plain_cfg.model.backbone, key
    plain = MODELS.build(plain_cfg.model)
    state = torch.load(out['checkpoint'], weights_only=True)['state_dict']
    plain.load_state_dict(state, strict=True)
    plain.eval()
    x = torch.rand(1, 3, H, W)
    meta = [dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W))]
    with torch.no_grad():
        assert torch.equal(model.inference(x, meta), plain.inference(x, meta))


@pytest.mark.parametrize('family', list(FAMILIES))
def test_k2_peak_memory_below_k1(family):
    size = (128, 256)
    pre = dict(PRE, size=size)
    batch = make_batch(n=2, size=size)
    peaks = {}
    for name, cuts in (('k1', ()), ('k2', 'default')):
        cfg = model_cfg(family, cuts, recons_head=None,
                        loss_recons_weight=0.)
        cfg.data_preprocessor = pre
        if 'pretrain_img_size' in cfg.backbone:  # Swin's abs. position
            cfg.backbone.pretrain_img_size = size
        model = build(cfg)
        peaks[name] = measure_step_memory(model, sgd(model), batch)['peak']
    assert peaks['k2'] < peaks['k1'], peaks


def test_swin_output_norms_train_in_the_last_module():
    """Invariant 7: Swin's norm{i} is read only by the final heads; in the
    module that computed stage i its output would reach the heads detached
    and the norm would never be trained."""
    model = build(model_cfg('Swin', [(2, 1), (4, 0)]))
    last = model.local_modules()[-1]
    norms = {id(p) for i in model.backbone.out_indices
             for p in getattr(model.backbone, f'norm{i}').parameters()}
    assert norms <= {id(p) for p in last.parameters()}
    first = model.local_modules()[0]
    assert id(model.backbone.absolute_pos_embed) in {
        id(p) for p in first.parameters()}


def test_contract_answers_for_transformers():
    mit = build(model_cfg('MiT', [(2, 1), (3, 0)])).backbone
    assert mit.units()[0] == (1, 0) and len(mit.units()) == 6
    assert mit.module_units(1) == [(2, 1)]
    assert [mit.module_in_channels(k) for k in range(3)] == [3, 16, 16]
    assert [mit.module_out_channels(k) for k in range(3)] == [16, 16, 32]
    swin = build(model_cfg('Swin', [(2, 1), (3, 0)])).backbone
    assert swin.units()[0] == 'stem' and len(swin.units()) == 7
    # stage 2 ends with the patch merging: its last unit outputs stage 3's
    # channels
    assert swin.module_out_channels(1) == 32
    x = torch.rand(2, 3, H, W)
    outs = {}
    y = swin.forward_module(0, x, outs)
    assert y.shape == (2, 16, H // 8, W // 8) and set(outs) == {0}
    assert outs[0].shape == (2, 8, H // 4, W // 4)


@pytest.mark.parametrize('family', ['MiT', 'Swin', 'ResNetV1c'])
def test_feature_reconstruction_local_loss(family):
    """recons_target='features': module k reconstructs its own input (the
    normalised image for module 1), MSE, same weights interface."""
    model = build(model_cfg(family, 'default', recons_target='features',
                            recons_head=dict(channels=8),
                            loss_recons_weight=2.0,
                            type='InfoProPaperLocalHead'))
    head = model.local_heads[0]
    assert head.recons_target == 'features' and not head.needs_image
    assert head.recons_head.out.out_channels == 3  # module 1's input
    logs = model.train_step(make_batch(), sgd(model))
    assert logs['s1.loss_recons'] > 0
    # the logged loss is weight x MSE(decoder(out), input) computed here
    model.eval()
    data = model.data_preprocessor(make_batch(), False)
    x = data['inputs']
    with torch.no_grad():
        out = model.backbone.forward_module(0, x, {})
        pred = head.recons_head(out, x.shape[-2:])
        expected = 2.0 * ((pred - x)**2).mean()
        _, _, mask = model.local_targets(x, data['data_samples'])
        got = head.loss(out, torch.zeros(2, H, W, dtype=torch.long), None,
                        mask, inputs=x)['loss_recons']
    assert torch.allclose(got, expected, rtol=1e-5)


def test_bad_cuts_are_named_for_transformers():
    with pytest.raises(ValueError, match=r'stage 2 has blocks 0\.\.1'):
        build(model_cfg('MiT', [(2, 2)]))
    with pytest.raises(ValueError, match=r'allowed range is 1\.\.4'):
        build(model_cfg('Swin', [(5, 0)]))
    with pytest.raises(ValueError, match=r'first allowed cut is \(2, 0\)'):
        build(model_cfg('MiT', [(1, 0)]))
    with pytest.raises(ValueError, match='sorted'):
        build(model_cfg('Swin', [(3, 0), (2, 1)]))
    with pytest.raises(ValueError, match="'stem' must come first"):
        normalize_blocks([(1, 0), 'stem'], (1, 2), 'checkpoint_blocks',
                         first_allowed=True, stem=True)


def test_stock_backbone_gets_a_hint():
    cfg = model_cfg('MiT')
    cfg.backbone.type = 'MixVisionTransformer'
    cfg.backbone.pop('split_points')
    with pytest.raises(TypeError, match='InfoProMixVisionTransformer'):
        MODELS.build(cfg)


@pytest.mark.parametrize('family', ['MiT', 'Swin'])
def test_memory_hook_and_distributed_wrapper_take_any_backbone(family):
    """InfoProMemoryHook logs every module of a transformer; the
    distributed wrapper (one DDP per local module, here in a world of one
    gloo process) partitions its parameters, Swin's bare absolute position
    embedding included, and trains it."""
    import os

    import torch.distributed as dist

    from mmseg_infopro.memory import InfoProMemoryHook
    from harness.processes import init_cpu_process_group

    from mmseg_infopro.engine import InfoProDistributedDataParallel
    from test_distributed import free_port
    model = build(model_cfg(family, 'default'))
    values = InfoProMemoryHook.measure_step(model, sgd(model), make_batch())
    assert {'mem.s1', 'mem.s2', 'mem.e2e_est', 'mem.saving'} <= set(values)
    assert 0 < values['mem.saving'] < 1

    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()),
                      RANK='0', WORLD_SIZE='1', LOCAL_RANK='0')
    try:
        assert init_cpu_process_group('pytorch')
        wrapper = InfoProDistributedDataParallel(model)
        # the lookahead's copies feed a conv + BN: a per-channel constant
        # (their last bias) gets no gradient there by construction
        params = [p for n, p in model.named_parameters()
                  if '.lookahead.' not in n]
        before = [p.detach().clone() for p in params]
        logs = wrapper.train_step(make_batch(), sgd(model))
        assert 's1.loss_task' in logs and 'decode.loss_ce' in logs
        moved = [not torch.equal(b, p) for b, p in zip(before, params)]
        assert all(moved)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        for key in ('MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE'):
            os.environ.pop(key, None)


def test_checkpointing_is_training_only(monkeypatch):
    """checkpoint_blocks / selective_checkpoint_blocks act only in training
    with gradients: inference (eval, or no_grad) runs the plain units, with
    the same outputs; in training the gradients are those of the plain
    model."""
    from mmseg_infopro.engine import backbone_contract as base
    # the paper's head: its module has no lookahead, whose copies would
    # be checkpointed too
    paper = dict(type='InfoProPaperLocalHead')
    cfg = model_cfg('Swin', 'default', **paper)
    cfg.backbone.checkpoint_blocks = ['stem', (2, 0)]
    cfg.backbone.selective_checkpoint_blocks = [(3, 0), (4, 0)]
    model = build(cfg)
    plain = build(model_cfg('Swin', 'default', **paper))
    calls = []
    real_checkpoint = base.checkpoint
    monkeypatch.setattr(base, 'checkpoint', lambda *a, **k: (
        calls.append(1), real_checkpoint(*a, **k))[1])
    x = torch.rand(2, 3, H, W)
    meta = [dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W))] * 2
    model.eval()
    plain.eval()
    with torch.no_grad():
        assert torch.equal(model.inference(x, meta), plain.inference(x, meta))
    model.train()
    plain.train()
    with torch.no_grad():
        model.backbone.forward_module(0, x, {})
    assert calls == []
    torch.manual_seed(0)
    logs = model.train_step(make_batch(), sgd(model,
                                              accumulative_counts=2))
    assert len(calls) == 4  # each checkpointed unit, once
    torch.manual_seed(0)
    ref = plain.train_step(make_batch(), sgd(plain, accumulative_counts=2))
    for key in logs:
        assert torch.allclose(logs[key], ref[key], atol=1e-6), key
    assert max_diff([p.grad for p in model.parameters()],
                    [p.grad for p in plain.parameters()]) < 1e-5
