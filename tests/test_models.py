"""InfoProResNetV1c, the local heads and the segmentor's build-time checks
(issue 2, items 3-5): real mmseg modules on small tensors."""
import copy

import pytest
import torch
from mmengine.config import Config

from mmseg.registry import MODELS

from conftest import DEMO_K2
from test_invariants import build, make_batch, model_cfg, sgd


def backbone(split_points=(), depth=18, **kw):
    return MODELS.build(
        dict(type='InfoProResNetV1c', depth=depth, stem_channels=16,
             base_channels=16, split_points=split_points, **kw))


# ------------------------------------------------------------- backbone
@pytest.mark.parametrize('points, exc, words', [
    ([(5, 0)], ValueError, ['(5, 0)', 'layer 5', '1..4']),
    ([(0, 1)], ValueError, ['layer 0', '1..4']),
    ([(2, 2)], ValueError, ['(2, 2)', 'block 2', '0..1']),
    ([(3, -1)], ValueError, ['block -1', '0..1']),
    ([(3, 0), (2, 1)], ValueError, ['sorted', '(2, 1)', '(3, 0)']),
    ([(2, 1), (2, 1)], ValueError, ['duplicate', '(2, 1)']),
    ([(1, 0)], ValueError, ['(1, 0)', 'very first block', '(1, 1)']),
    ('3,13', TypeError, ["'3,13'", '(layer, block)']),
    ('auto', ValueError, ["'auto'", 'tools/plan_splits.py', '--write']),
    ([(3, )], TypeError, ['(3,)', 'pair']),
    ([(3.0, 1)], TypeError, ['(3.0, 1)', 'ints']),
    ([(1, 1)] * 8, ValueError, ['8 cuts', '8 blocks', 'at most 7']),
])
def test_bad_split_points_are_named(points, exc, words):
    with pytest.raises(exc) as info:
        backbone(points)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_paper_cut_on_resnet101():
    net = MODELS.build(dict(type='InfoProResNetV1c', depth=101,
                            split_points=[(3, 13)]))
    assert net.num_modules == 2
    assert len(net.module_blocks(0)) == 3 + 4 + 13
    assert len(net.module_blocks(1)) == 10 + 3
    assert net.module_out_channels(0) == 1024
    with pytest.raises(ValueError, match=r'layer 3 has blocks 0\.\.22'):
        MODELS.build(dict(type='InfoProResNetV1c', depth=101,
                          split_points=[(3, 23)]))


def test_state_dict_keys_and_forward_equal_resnetv1c():
    ours = backbone([(2, 1), (4, 0)], out_indices=(0, 1, 2, 3))
    theirs = MODELS.build(dict(type='ResNetV1c', depth=18, stem_channels=16,
                               base_channels=16))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict(), strict=True)
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        a, b = ours(x), theirs(x)
        # module by module, as train_step runs it
        outs, h = {}, x
        for k in range(ours.num_modules):
            h = ours.forward_module(k, h, outs)
    assert len(a) == len(b) == 4
    for i, (u, v) in enumerate(zip(a, b)):
        assert torch.equal(u, v)
        assert torch.equal(outs[i], v)


def test_every_k_up_to_number_of_blocks_trains():
    """K = number of blocks (8 for ResNet-18): one local module per block,
    the stem riding with the first."""
    net = backbone()
    cuts = [p for p in net.all_blocks() if p != (1, 0)]
    assert len(cuts) == 7
    model = build(model_cfg(split_points=cuts))
    assert model.num_modules == 8
    log = model.train_step(make_batch(), sgd(model))
    assert {f's{k}.loss_task' for k in range(1, 8)} <= set(log)
    assert torch.isfinite(log['loss'])


# ----------------------------------------------------------- local heads
def test_local_head_in_channels_follow_the_cut_and_wrong_value_fails():
    cfg = model_cfg(split_points=((2, 1), (4, 0)))
    model = build(cfg)
    assert [h.in_channels for h in model.local_heads] == [64, 128]
    bad = copy.deepcopy(cfg)
    bad.local_heads = [dict(cfg.local_heads[0], in_channels=64),
                       dict(cfg.local_heads[0], in_channels=64)]
    with pytest.raises(ValueError) as info:
        MODELS.build(bad)
    msg = str(info.value)
    assert 'local_heads[1].in_channels=64' in msg and '128' in msg
    assert '(4, 0)' in msg


def test_local_heads_count_must_match_cuts():
    cfg = model_cfg(split_points=((2, 1), (4, 0)))
    cfg.local_heads = cfg.local_heads[:1]
    with pytest.raises(ValueError, match=r'local_heads has 1 entries.*2 '
                       r'cut\(s\)'):
        MODELS.build(cfg)
    cfg = model_cfg(split_points=())
    cfg.local_heads = [model_cfg().local_heads[0]]
    with pytest.raises(ValueError, match='local_heads has 1 entries'):
        MODELS.build(cfg)


def test_single_local_head_dict_is_used_for_every_cut():
    cfg = model_cfg(split_points=((2, 1), (4, 0)))
    cfg.local_heads = cfg.local_heads[0]
    model = MODELS.build(cfg)
    assert len(model.local_heads) == 2


@pytest.mark.parametrize('key, value', [('loss_recons_weight', -1.0),
                                        ('loss_task_weight', 'one'),
                                        ('loss_task_weight', None)])
def test_bad_loss_weights_are_named(key, value):
    with pytest.raises(ValueError) as info:
        MODELS.build(model_cfg(**{key: value}))
    assert key in str(info.value) and repr(value) in str(info.value)


def test_backbone_without_cuts_support_is_rejected():
    cfg = model_cfg()
    cfg.backbone.type = 'ResNetV1c'
    cfg.backbone.pop('split_points')
    with pytest.raises(TypeError, match='InfoProResNetV1c'):
        MODELS.build(cfg)


def test_recons_target_recovers_image_and_masks_padding():
    from mmseg_infopro.models.heads.recons_decoder import \
        reconstruction_target
    cfg = model_cfg()
    model = MODELS.build(cfg)
    batch = make_batch(n=2, size=(50, 100))  # padded to 64x128
    data = model.data_preprocessor(batch, True)
    image, mask = reconstruction_target(data['inputs'], data['data_samples'],
                                        model.data_preprocessor)
    assert image.shape == (2, 3, 64, 128) and mask.shape[-2:] == (64, 128)
    raw = torch.stack(batch['inputs']).float().flip(1) / 255  # BGR->RGB
    assert torch.allclose(image[:, :, :50, :100], raw, atol=1e-5)
    assert mask[:, ..., :50, :100].all()
    assert not mask[:, ..., 50:, :].any() and not mask[:, ..., :, 100:].any()


def test_task_head_upsamples_and_ignores_255():
    model = build(model_cfg())
    head = model.local_heads[0]
    x = torch.randn(2, head.in_channels, 8, 16)
    gt = torch.randint(0, 19, (2, 64, 128))
    losses = head.loss(x, gt, None, None) if not head.needs_image else \
        head.loss(x, gt, torch.rand(2, 3, 64, 128),
                  torch.ones(2, 1, 64, 128, dtype=torch.bool))
    assert set(losses) == {'loss_task', 'loss_recons', 'acc_seg'}
    # all pixels ignored -> the task loss carries no gradient signal
    ignored = head.loss(x.requires_grad_(), torch.full_like(gt, 255),
                        torch.rand(2, 3, 64, 128),
                        torch.ones(2, 1, 64, 128, dtype=torch.bool))
    assert ignored['loss_task'].item() == 0.0


def test_inference_is_plain_and_ignores_local_heads():
    """Invariant 5: predict gives the same result with the local heads
    removed (they are training-only)."""
    model = build(model_cfg()).eval()
    batch = make_batch(n=1)
    with torch.no_grad():
        a = model.test_step(batch)[0].seg_logits.data
        model.local_heads = torch.nn.ModuleList()
        b = model.test_step(batch)[0].seg_logits.data
    assert torch.equal(a, b)


def test_every_config_builds():
    """Issue 2 item 6: every config in configs/ builds its model
    (pretrained weights cannot be downloaded here: pretrained=None)."""
    import glob
    import os.path as osp
    repo = osp.dirname(osp.dirname(DEMO_K2))
    paths = sorted(glob.glob(osp.join(repo, 'infopro', '*.py')) +
                   glob.glob(osp.join(repo, 'demo', '*.py')))
    assert len(paths) >= 8
    expected = {
        'deeplabv3_r101_k2_cityscapes.py': [(3, 13)],
        'deeplabv3_r101_k1_cityscapes.py': [],
    }
    for path in paths:
        cfg = Config.fromfile(path)
        cfg.model.pretrained = None
        model = MODELS.build(cfg.model)
        name = osp.basename(path)
        assert model.num_modules == len(model.backbone.split_points) + 1
        assert len(model.local_heads) == model.num_modules - 1, name
        if name in expected:
            assert model.backbone.split_points == expected[name], name
        if 'r101' in name:
            assert model.backbone.depth == 101
            assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
            assert cfg.train_cfg.max_iters == 40000
        if name.endswith('_cityscapes.py'):
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader'):
                assert cfg[loader].dataset.type == \
                    'CheckedCityscapesDataset', (name, loader)
            assert dict(type='RNGStateHook') in cfg.custom_hooks, name
            assert dict(type='InfoProMemoryHook',
                        interval=50) in cfg.custom_hooks, name
            if model.local_heads:  # SyncBN everywhere in the paper setting
                assert any(isinstance(m, torch.nn.SyncBatchNorm)
                           for m in model.local_heads.modules()), name
        if 'b12' in name or '640x1280' in name:
            head = model.local_heads[0]
            assert (head.loss_recons_weight, head.loss_task_weight) == (
                (1.0, 0.1) if 'b12' in name else (2.0, 1.0))
            assert cfg.optim_wrapper.optimizer.lr == 0.015
        if name == 'deeplabv3_r101_k2_cityscapes.py':
            head = model.local_heads[0]
            weights = (head.loss_recons_weight, head.loss_task_weight)
            assert weights == (1.5, 1.0)
            assert cfg.optim_wrapper.optimizer.lr == 0.01
            assert cfg.train_dataloader.batch_size == 2
            assert tuple(cfg.crop_size) == (512, 1024)
