"""Behaviour users rely on (issue 11): necks, multi-input and several
auxiliary heads, cuts after an auxiliary head's layer, frozen stages with
norm_eval, accumulation windows that do not divide max_iters, the
reconstruction loss on padded batches, distributed testing of non-InfoPro
models, and tools/demo.py. Real mmseg/mmengine code on the demo model
(ResNetV1c-18, 32 base channels) at 64x128."""
import copy
import glob
import json
import os
import os.path as osp
import re
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmengine.hooks import Hook
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg.registry import HOOKS
from mmseg_infopro.datasets.synthetic_cityscapes import read_meta

from conftest import REPO, demo_cfg, single_thread
from test_invariants import (build, make_batch, max_diff, model_cfg,
                             plain_twin, sgd)

TESTS = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.join(REPO, 'tools'))
import demo as demo_tool  # noqa: E402  (tools/demo.py)
import test as test_tool  # noqa: E402  (tools/test.py)

BN = dict(type='BN', requires_grad=True)
# one intra-op thread: much faster for these small steps on a loaded
# 2-core machine
pytestmark = pytest.mark.usefixtures('one_thread')
LOCAL_MODULE_KEY = re.compile(r'^s(\d+)\.')


def no_dropout_cfg(split_points=((3, 0), ), **local_head):
    """The demo model without dropout anywhere (so that two models with
    the same weights compute exactly the same losses)."""
    cfg = model_cfg(split_points=split_points,
                    task_head=dict(channels=64, dropout_ratio=0.),
                    **local_head)
    cfg.decode_head.dropout_ratio = 0.
    cfg.auxiliary_head.dropout_ratio = 0.
    # (mmseg zero-initialises the last BN of every block: the rest of the
    # block would get no gradient in the first step)
    cfg.backbone.zero_init_residual = False
    return cfg


def fcn(in_channels, in_index, loss_weight=0.4, **kw):
    return dict(type='FCNHead', in_channels=in_channels, in_index=in_index,
                channels=16, num_convs=1, concat_input=False,
                dropout_ratio=0., num_classes=19, norm_cfg=BN,
                align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                 loss_weight=loss_weight), **kw)


def own_losses(losses, num_modules):
    """Module k's loss: ``s{k+1}.loss*`` for the local modules, every other
    ``*loss*`` entry (decode, aux, aux_0, ...) for the last."""
    per_module = [0.] * num_modules
    for key, value in losses.items():
        if 'loss' not in key:
            continue
        m = LOCAL_MODULE_KEY.match(key)
        per_module[int(m.group(1)) - 1 if m else num_modules - 1] += value
    return per_module


def trainable(module):
    return [p for p in module.parameters() if p.requires_grad]


def assert_isolated(model, batch, seed=11, tol=1e-6):
    """One train_step that does not update (the first of two accumulated
    iterations, so the gradients stay): every trainable parameter of
    local module k holds exactly d loss_k / d theta (loss_k alone: no
    gradient of a later module's loss leaks back through a cut). Returns
    the log and the reference losses."""
    model.train()
    ref = copy.deepcopy(model)
    torch.manual_seed(seed)
    log = model.train_step(batch, sgd(model, accumulative_counts=2))

    torch.manual_seed(seed)
    data = ref.data_preprocessor(batch, True)
    losses = ref.loss(data['inputs'], data['data_samples'])
    assert set(log) == {'loss'} | set(losses)
    per_module = own_losses(losses, ref.num_modules)
    for k, (ours, theirs) in enumerate(zip(model.local_modules(),
                                           ref.local_modules())):
        params = trainable(theirs)
        assert params, k
        expected = torch.autograd.grad(per_module[k] / 2, params,
                                       retain_graph=True, allow_unused=True)
        for (name, p), g in zip(
                [(n, p) for n, p in ours.named_parameters()
                 if p.requires_grad], expected):
            assert p.grad is not None and g is not None, (k, name)
            assert (p.grad - g).abs().max() < tol, (k, name)
        assert all(p.grad.any() for p in trainable(ours)), k
    return log, losses


def assert_final_losses_match_plain(model, cfg, batch):
    """The decode / auxiliary losses equal those of mmseg's EncoderDecoder
    (+ ResNetV1c, same neck and heads) with the same weights: the heads
    read the right backbone outputs (the cut changes no forward value)."""
    plain = plain_twin(cfg)
    missing, unexpected = plain.load_state_dict(model.state_dict(),
                                                strict=False)
    assert missing == [] and all(k.startswith('local_heads.')
                                 for k in unexpected)
    results = []
    for m in (model, plain):
        m.train()
        data = m.data_preprocessor(batch, True)
        with torch.no_grad():
            results.append(m.loss(data['inputs'], data['data_samples']))
    ours, theirs = results
    assert set(theirs) <= set(ours)
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key], value, rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f'{key}: {m}')
    return theirs


def train_moves_everything(model, iters=2):
    """A few SGD steps: losses finite, every trainable parameter moved."""
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optim = sgd(model, lr=0.05)
    for it in range(iters):
        log = model.train_step(make_batch(seed=30 + it), optim)
        assert all(torch.isfinite(v) for v in log.values()), log
    still = [n for n, p in model.named_parameters()
             if p.requires_grad and torch.equal(p, before[n])]
    assert still == []
    return log


def detached_inputs(module, record):
    """Forward pre-hook: whether what ``module`` reads (a tensor, or each
    tensor of a sequence) is detached from the graph (no grad_fn). mmseg's
    decode heads call their own ``forward`` directly, so for a head this
    goes on its first layer (``head.convs``), which gets the input that the
    head selected with ``in_index``. Deep copies of the model keep the
    hook: the records of both are identical."""

    def hook(module, args):
        x = args[0]
        record.append(x.grad_fn is None if torch.is_tensor(x) else
                      [f.grad_fn is None for f in x])

    return module.register_forward_pre_hook(hook)


def only(records):
    """The one value all the records (one per forward) agree on."""
    assert records and all(r == records[0] for r in records), records
    return records[0]


# --------------------------------------------------------- a. FPN neck
def fpn_cfg():
    """ResNetV1c-18 at strides 4..32, FPN neck over its 4 stages, FPNHead
    and an FCN auxiliary head on the neck outputs; cut before layer3, so
    the FPN reads layer1 and layer2 from module 1."""
    cfg = no_dropout_cfg()
    cfg.backbone.update(strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1),
                        out_indices=(0, 1, 2, 3))
    cfg.neck = dict(type='FPN', in_channels=[32, 64, 128, 256],
                    out_channels=32, num_outs=4)
    cfg.decode_head = dict(
        type='FPNHead', in_channels=[32, 32, 32, 32], in_index=[0, 1, 2, 3],
        feature_strides=[4, 8, 16, 32], channels=32, dropout_ratio=0.,
        num_classes=19, norm_cfg=BN, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                         loss_weight=1.0))
    cfg.auxiliary_head = fcn(32, 2)
    return cfg


def test_fpn_neck_with_cut_is_isolated_and_trains():
    cfg = fpn_cfg()
    model = build(cfg)
    assert model.with_neck and model.num_modules == 2
    seen = []
    handle = detached_inputs(model.neck, seen)
    try:
        log, losses = assert_isolated(model, make_batch())
    finally:
        handle.remove()
    # layer1 and layer2 (module 1) reach the neck detached, layer3 and
    # layer4 (module 2) with their graph
    assert only(seen) == [True, True, False, False]
    assert {'s1.loss_task', 's1.loss_recons', 'decode.loss_ce',
            'aux.loss_ce'} <= set(log)
    assert_final_losses_match_plain(model, cfg, make_batch(seed=4))
    train_moves_everything(model)


# ------------------------------ b. in_index lists, several aux heads
def multi_input_cfg():
    """A decode head reading layers 2-4 (resize_concat) and two auxiliary
    heads (layer2, layer3), cut before layer3: layer2 comes from module
    1."""
    cfg = no_dropout_cfg()
    cfg.decode_head = fcn([64, 128, 256], [1, 2, 3], loss_weight=1.0,
                          input_transform='resize_concat')
    cfg.auxiliary_head = [fcn(64, 1), fcn(128, 2, loss_weight=0.2)]
    return cfg


def test_in_index_lists_and_several_aux_heads_with_cut():
    cfg = multi_input_cfg()
    model = build(cfg)
    aux_seen = [], []
    handles = [detached_inputs(head.convs, seen) for head, seen in zip(
        model.auxiliary_head, aux_seen)]
    try:
        log, losses = assert_isolated(model, make_batch())
    finally:
        for h in handles:
            h.remove()
    # auxiliary head 0 reads layer2 (module 1): detached; head 1 layer3
    assert (only(aux_seen[0]), only(aux_seen[1])) == (True, False)
    assert {'s1.loss_task', 'decode.loss_ce', 'aux_0.loss_ce',
            'aux_1.loss_ce'} <= set(log)
    final = assert_final_losses_match_plain(model, cfg, make_batch(seed=4))
    assert {'decode.loss_ce', 'aux_0.loss_ce', 'aux_1.loss_ce'} <= set(final)
    train_moves_everything(model)


# ------------------ c. a cut after the layer an auxiliary head reads
@pytest.mark.parametrize('cut', [(4, 0), (4, 1)])
def test_cut_after_the_aux_layer(cut):
    """The auxiliary head reads layer3, which module 1 computes (the cut is
    in layer 4): it gets layer3 detached, trains, and its loss does not
    reach module 1."""
    cfg = no_dropout_cfg(split_points=(cut, ))
    assert cfg.auxiliary_head.in_index == 2
    model = build(cfg)
    aux_seen, decode_seen = [], []
    handles = [detached_inputs(model.auxiliary_head.convs, aux_seen),
               detached_inputs(model.decode_head.image_pool, decode_seen)]
    try:
        log, losses = assert_isolated(model, make_batch())
    finally:
        for h in handles:
            h.remove()
    # layer3 (module 1) reaches the auxiliary head detached, layer4
    # (module 2) the decode head with its graph
    assert (only(aux_seen), only(decode_seen)) == (True, False)
    assert 'aux.loss_ce' in log and losses['aux.loss_ce'] > 0
    aux_params = trainable(model.auxiliary_head)
    assert all(p.grad is not None and p.grad.any() for p in aux_params)
    assert_final_losses_match_plain(model, cfg, make_batch(seed=4))
    train_moves_everything(model)


# ------------------------------------- d. frozen_stages and norm_eval
def frozen_cfg():
    """frozen_stages=1 (stem and layer1 frozen) and norm_eval (every BN
    of the backbone uses its running statistics), K=3: module 1 is the
    stem and layer1[0] (all frozen), module 2 starts in layer1."""
    cfg = model_cfg(split_points=((1, 1), (3, 0)))
    cfg.backbone.update(frozen_stages=1, norm_eval=True)
    return cfg


def snapshot(model):
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    return params, buffers


def check_frozen_and_norm_eval(model, params, buffers):
    backbone = model.backbone
    frozen = [f'backbone.{n}' for n, p in backbone.named_parameters()
              if n.startswith(('stem.', 'layer1.'))]
    assert frozen and all(not p.requires_grad for n, p in
                          backbone.named_parameters()
                          if n.startswith(('stem.', 'layer1.')))
    named = dict(model.named_parameters())
    moved = [n for n in frozen if not torch.equal(named[n], params[n])]
    assert moved == []
    # every backbone BN kept its statistics (norm_eval), frozen or not
    bn_buffers = [n for n in buffers if n.startswith('backbone.') and
                  n.rsplit('.', 1)[1] in ('running_mean', 'running_var',
                                          'num_batches_tracked')]
    assert len(bn_buffers) > 30
    current = dict(model.named_buffers())
    changed = [n for n in bn_buffers if not torch.equal(current[n],
                                                        buffers[n])]
    assert changed == []
    # the rest trains: the unfrozen backbone layers, every head, and the
    # BN statistics outside the backbone
    for prefix in ('backbone.layer2.', 'backbone.layer4.', 'local_heads.0.',
                   'local_heads.1.', 'decode_head.', 'auxiliary_head.'):
        names = [n for n in named if n.startswith(prefix)]
        assert names and all(named[n].requires_grad for n in names)
        assert all(not torch.equal(named[n], params[n]) for n in names), \
            prefix
    for prefix in ('local_heads.0.', 'decode_head.'):
        stats = [n for n in buffers if n.startswith(prefix) and
                 n.endswith('running_mean')]
        assert stats and all(not torch.equal(current[n], buffers[n])
                             for n in stats), prefix


def test_frozen_stages_and_norm_eval_with_cuts():
    model = build(frozen_cfg())
    model.train()
    bns = [m for m in model.backbone.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(m.training for m in bns)
    params, buffers = snapshot(model)
    optim = sgd(model, weight_decay=5e-4)
    for it in range(2):
        model.train()  # as the runner does every iteration
        log = model.train_step(make_batch(seed=40 + it), optim)
    assert {'s1.loss_task', 's2.loss_task', 'decode.loss_ce'} <= set(log)
    check_frozen_and_norm_eval(model, params, buffers)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def gloo_world_of_one():
    """A world_size=1 gloo group in this process, destroyed afterwards."""
    assert not dist.is_initialized()
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:'
                            f'{free_port()}', rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_frozen_stages_and_norm_eval_through_distributed_wrapper(
        gloo_world_of_one):
    """The same through InfoProDistributedDataParallel (what the runner
    uses with a launcher), as the runner calls it: ``train()`` then
    ``train_step`` every iteration."""
    from mmseg_infopro.engine import InfoProDistributedDataParallel
    model = build(frozen_cfg())
    wrapper = InfoProDistributedDataParallel(model)
    params, buffers = snapshot(model)
    optim = sgd(model, weight_decay=5e-4)
    bns = [m for m in model.backbone.modules() if isinstance(m, _BatchNorm)]
    training_bns = []
    for it in range(2):
        wrapper.train()
        training_bns.append(sum(m.training for m in bns))
        wrapper.train_step(make_batch(seed=40 + it), optim)
    check_frozen_and_norm_eval(model, params, buffers)
    assert training_bns == [0, 0]


# ------------- e. accumulation window that does not divide max_iters
def test_accumulation_remainder_window_matches_update_params():
    """accumulative_counts=3 over max_iters=4: one full window (iterations
    1-3), then a last window of one iteration, whose loss mmengine scales
    by 1 instead of 1/3. InfoPro's train_step (the local losses included)
    matches OptimWrapper.update_params on the summed loss of the same
    model, stepping after iterations 3 and 4 only."""
    size = (32, 64)
    cfg = no_dropout_cfg()
    cfg.data_preprocessor.size = size
    ours = build(cfg)
    ref = copy.deepcopy(ours)
    opt_ours, opt_ref = (sgd(m, accumulative_counts=3) for m in (ours, ref))
    for model, optim in ((ours, opt_ours), (ref, opt_ref)):
        # what the runner does before training (max_iters=4)
        optim.initialize_count_status(model, 0, 4)
    steps = {id(opt_ours): [], id(opt_ref): []}
    for optim in (opt_ours, opt_ref):
        optim.optimizer.register_step_post_hook(
            lambda o, args, kwargs, key=id(optim): steps[key].append(it))
    initial = [p.detach().clone() for p in ours.parameters()]
    for it in range(4):
        batch = make_batch(seed=50 + it, size=size)
        ours.train_step(batch, opt_ours)
        data = ref.data_preprocessor(batch, True)
        with opt_ref.optim_context(ref):
            losses = ref.loss(data['inputs'], data['data_samples'])
        loss, _ = ref.parse_losses(losses)
        opt_ref.update_params(loss)
        assert max_diff(ours.parameters(), ref.parameters()) < 1e-5, it
        if it < 2:
            assert max_diff(ours.parameters(), initial) == 0.0, it
    assert steps[id(opt_ours)] == steps[id(opt_ref)] == [2, 3]
    assert max_diff(ours.parameters(), initial) > 1e-3


# ----------------------------- f. reconstruction loss with padding
def padded_batch():
    """Two images smaller than data_preprocessor.size (64x128), of two
    sizes: the preprocessor pads them bottom/right."""
    g = torch.Generator().manual_seed(6)
    inputs, samples = [], []
    from mmengine.structures import PixelData

    from mmseg.structures import SegDataSample
    for h, w in ((50, 100), (64, 120)):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g,
                                    dtype=torch.uint8))
        sample = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, 19, (1, h, w), generator=g)))
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_reconstruction_loss_ignores_padding():
    """The s1 reconstruction loss equals BCE(decoder logits, image / 255)
    averaged over the real pixels (times its weight 1.5); what the decoder
    outputs in the padded pixels does not change it, what it outputs in
    real pixels does."""
    model = build(model_cfg())
    model.train()
    batch = padded_batch()
    data = model.data_preprocessor(batch, True)
    assert data['inputs'].shape == (2, 3, 64, 128)
    assert [tuple(s.metainfo['padding_size'])
            for s in data['data_samples']] == [(0, 28, 0, 14), (0, 8, 0, 0)]
    decoder = model.local_heads[0].recons_head
    captured, edit = [], []

    def hook(module, args, output):
        if edit:
            output = edit[0](output.clone())
        captured.append(output.detach())
        return output

    handle = decoder.register_forward_hook(hook)

    def recons_loss():
        torch.manual_seed(0)
        with torch.no_grad():
            return model.loss(data['inputs'],
                              data['data_samples'])['s1.loss_recons']

    try:
        base = recons_loss()
        logits = captured[-1]

        def pad_noise(out):
            noise = torch.randn_like(out) * 50
            out[0, :, 50:, :] = noise[0, :, 50:, :]
            out[0, :, :, 100:] = noise[0, :, :, 100:]
            out[1, :, :, 120:] = noise[1, :, :, 120:]
            return out

        edit[:] = [pad_noise]
        torch.testing.assert_close(recons_loss(), base, rtol=1e-6, atol=0)
        edit[:] = [lambda out: out.index_fill_(3, torch.tensor([10]), 9.)]
        assert abs(recons_loss() - base) > 1e-4
    finally:
        handle.remove()

    assert logits.shape == (2, 3, 64, 128)
    bce, count = 0., 0
    for i, image in enumerate(batch['inputs']):
        h, w = image.shape[-2:]
        target = image.flip(0).float() / 255  # BGR -> RGB
        bce = bce + F.binary_cross_entropy_with_logits(
            logits[i, :, :h, :w], target, reduction='sum')
        count += target.numel()
    expected = 1.5 * bce / count
    assert model.local_heads[0].loss_recons_weight == 1.5
    torch.testing.assert_close(base, expected, rtol=1e-5, atol=1e-6)


# -------------------- g. distributed testing of non-InfoPro models
@HOOKS.register_module(force=True)
class DistTestProbeHook(Hook):
    """Every rank saves what it tested with: the model wrapper, the model
    inside, how many samples it predicted, and the metrics."""

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.record = {}

    def before_test(self, runner):
        model = runner.model
        self.record = dict(
            wrapper=type(model).__name__,
            module=type(getattr(model, 'module', model)).__name__,
            rank=runner.rank, world_size=runner.world_size, samples=0)

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None):
        self.record['samples'] += len(outputs)

    def after_test_epoch(self, runner, metrics=None):
        self.record['metrics'] = dict(metrics or {})
        os.makedirs(self.out_dir, exist_ok=True)
        torch.save(self.record,
                   osp.join(self.out_dir, f'probe_{runner.rank}.pt'))


def probed_test_cfg(root, work_dir, plain):
    cfg = demo_cfg(root, work_dir)
    if plain:  # mmseg's own EncoderDecoder + ResNetV1c
        model = cfg.model
        model.type = 'EncoderDecoder'
        model.backbone.type = 'ResNetV1c'
        model.backbone.pop('split_points')
        model.pop('local_heads')
        # it measures InfoPro modules, and says so for another model
        cfg.custom_hooks = [h for h in cfg.custom_hooks
                            if h['type'] != 'InfoProMemoryHook']
    cfg.custom_imports = dict(imports=['mmseg_infopro', 'test_behaviour'],
                              allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='DistTestProbeHook', out_dir=str(work_dir))]
    return cfg


@pytest.mark.parametrize('kind, tta', [('infopro', True), ('plain', False)])
def test_dist_test_of_non_infopro_models(synthetic_root, tmp_path, kind,
                                         tta):
    """``tools/dist_test.sh`` with 2 gloo processes where the model inside
    InfoProDistributedDataParallel is not an InfoPro segmentor: the TTA
    model around an InfoPro checkpoint (``--tta``), and mmseg's plain
    EncoderDecoder. Each rank tests one of the 2 images; the gathered
    metrics equal a single process's."""
    from mmseg.registry import MODELS
    plain = kind == 'plain'
    dist_dir, single_dir = tmp_path / 'dist', tmp_path / 'single'
    cfg = probed_test_cfg(synthetic_root, dist_dir, plain)
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    path = str(tmp_path / 'dist_cfg.py')
    cfg.dump(path)
    extra = ['--tta'] if tta else []

    env = dict(os.environ)
    env.update(PORT=str(free_port()), PYTHON=sys.executable,
               OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='',
               PYTHONPATH=os.pathsep.join(
                   [REPO, TESTS, env.get('PYTHONPATH', '')]))
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_test.sh'), path, ckpt, '2',
         '--work-dir', str(dist_dir)] + extra,
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    records = [torch.load(osp.join(dist_dir, f'probe_{r}.pt'),
                          weights_only=False) for r in (0, 1)]
    inner = 'SegTTAModel' if tta else ('EncoderDecoder' if plain else
                                       'InfoProEncoderDecoder')
    for rank, rec in enumerate(records):
        assert rec['rank'] == rank and rec['world_size'] == 2
        assert rec['wrapper'] == 'InfoProDistributedDataParallel'
        assert rec['module'] == inner
        assert rec['samples'] == 1  # one of the two val images each
    assert records[0]['metrics'] == records[1]['metrics']

    cfg = probed_test_cfg(synthetic_root, single_dir, plain)
    path = str(tmp_path / 'single_cfg.py')
    cfg.dump(path)
    with single_thread():
        metrics = test_tool.main([path, ckpt, '--work-dir',
                                  str(single_dir)] + extra)
    single = torch.load(osp.join(single_dir, 'probe_0.pt'),
                        weights_only=False)
    assert single['world_size'] == 1 and single['samples'] == 2
    assert single['wrapper'] == inner  # not wrapped without a launcher
    assert set(metrics) == set(records[0]['metrics']) and 'mIoU' in metrics
    for key, value in metrics.items():
        assert records[0]['metrics'][key] == pytest.approx(value, abs=1e-6)


# ------------------------------------------------------ h. tools/demo.py
SMALL_DATA = dict(num_train=4, num_val=2, height=64, width=128, seed=0)


def small_demo_config(tmp_path, logger_interval):
    """The K=2 demo config at the test size (64x128, batch 2), with the
    memory hook measuring every iteration."""
    cfg = demo_cfg(str(tmp_path / 'unused'), tmp_path / 'cfg_work',
                   max_iters=2)
    cfg.default_hooks.logger.interval = logger_interval
    cfg.custom_hooks = [dict(type='RNGStateHook'),
                        dict(type='InfoProMemoryHook', interval=1)]
    path = str(tmp_path / 'deeplabv3_r18-tiny_k2_small.py')
    cfg.dump(path)
    return path


def run_demo(tmp_path, monkeypatch, iters, logger_interval=1):
    """tools/demo.py's main with its own arguments: a fresh data root,
    the small config, ``--iters``; the data it generates made small."""
    monkeypatch.setitem(demo_tool.TASKS['segmentation'], 'data',
                        SMALL_DATA)
    monkeypatch.chdir(tmp_path)  # demo.main changes to the repository
    root = str(tmp_path / 'data')
    work = str(tmp_path / 'work')
    with single_thread():
        metrics = demo_tool.main([
            '--config', small_demo_config(tmp_path, logger_interval),
            '--data-root', root, '--work-dir', work,
            '--iters', str(iters)])
    return root, work, metrics


def test_demo_trains_tests_and_summarises(tmp_path, monkeypatch, capsys):
    """README step 1, short: tools/demo.py generates the data, trains
    through tools/train.py for --iters iterations, tests through
    tools/test.py, and prints a summary whose every number is the run's:
    the losses logged at the first and last iteration, the memory hook's
    last record, and test.py's metrics."""
    root, work, metrics = run_demo(tmp_path, monkeypatch, iters=2)
    out = capsys.readouterr().out
    assert f'[demo] generating a synthetic Cityscapes-format dataset in ' \
        f'{root} (4 train / 2 val images, 64x128)' in out
    assert read_meta(root)['num_train'] == 4
    assert len(glob.glob(osp.join(root, 'leftImg8bit', 'train', '*',
                                  '*.png'))) == 4
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
    assert re.search(r'\[demo\] deeplabv3_r18-tiny_k2_small: 2 iterations '
                     r'in \d+ s', out)

    [scalars] = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    with open(scalars) as f:
        train = [r for r in map(json.loads, f) if 'loss' in r]
    assert [r['iter'] for r in train] == [1, 2]
    keys = [k for k in train[0] if 'loss' in k]
    assert {'loss', 's1.loss_task', 's1.loss_recons', 'decode.loss_ce',
            'aux.loss_ce'} <= set(keys)
    for key in keys:
        first, last = train[0][key], train[-1][key]
        trend = 'falling' if last < first else 'NOT falling'
        row = f'[demo] {key:<22}{first:>12.4f}{last:>14.4f}   {trend}'
        assert row in out, (row, out[-3000:])
    mem = train[-1]
    assert f'E2E estimate {mem["mem.e2e_est"]:.1f}; saving ' \
        f'{mem["mem.saving"]:.1%}' in out
    assert f's1 {mem["mem.s1"]:.1f}, s2 {mem["mem.s2"]:.1f}' in out

    [test_log] = glob.glob(osp.join(work, 'test', '*', '*.json'))
    with open(test_log) as f:
        tested = json.loads(f.readline())
    for key in ('mIoU', 'aAcc', 'mAcc'):
        assert metrics[key] == pytest.approx(tested[key])
    assert f'tools/test.py on {osp.join(work, "iter_2.pth")}: mIoU ' \
        f'{metrics["mIoU"]:.2f}  aAcc {metrics["aAcc"]:.2f}  mAcc ' \
        f'{metrics["mAcc"]:.2f}' in out

    # a second run finds its data; a foreign folder is refused
    demo_tool.ensure_data('segmentation', root)
    assert f'[demo] using the synthetic dataset in {root}' in \
        capsys.readouterr().out
    other = tmp_path / 'not_generated'
    other.mkdir()
    (other / 'something.txt').write_text('x')
    with pytest.raises(SystemExit, match='holds no generated dataset'):
        demo_tool.ensure_data('segmentation', str(other))


def test_demo_with_fewer_iterations_than_the_log_interval(
        tmp_path, monkeypatch):
    run_demo(tmp_path, monkeypatch, iters=1, logger_interval=20)


def test_demo_command_line():
    """The README's command line: the script starts from the repository
    root without installation tricks and offers the options the docs
    name."""
    proc = subprocess.run([sys.executable, 'tools/demo.py', '--help'],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for option in ('--config', '--data-root', '--work-dir', '--iters'):
        assert option in proc.stdout
    args = demo_tool.parse_args([])
    assert args.config == osp.join('configs', 'demo',
                                   'deeplabv3_r18-tiny_k2_synthetic.py')
    assert osp.isfile(osp.join(REPO, args.config))
    assert args.iters is None and args.data_root == \
        'data/synthetic_cityscapes'


def test_classification_demo(tmp_path, monkeypatch, capsys):
    """``tools/demo.py --task classification``, short: it writes a
    CIFAR-10-format dataset, trains the ResNet-32 K=2 demo config (one
    epoch, shrunk) through tools/train.py, tests it through tools/test.py
    and prints the test's top-1 and top-5."""
    from mmengine.config import Config
    monkeypatch.setitem(demo_tool.TASKS['classification'], 'data',
                        dict(train_per_class=2, test_per_class=1, seed=0))
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(osp.join(
        REPO, demo_tool.TASKS['classification']['config']))
    cfg.model.backbone.depth = 8
    cfg.model.backbone.split_points = [(2, 0)]
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.param_scheduler = []
    cfg.default_hooks.logger.interval = 1
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].num_workers = 0
        cfg[key].batch_size = 10
    cfg.visualizer.name = f'visualizer_{tmp_path}'
    path = str(tmp_path / 'resnet8_k2_small.py')
    cfg.dump(path)
    root, work = str(tmp_path / 'cifar'), str(tmp_path / 'work')
    with single_thread():
        metrics = demo_tool.main(['--task', 'classification', '--config',
                                  path, '--data-root', root, '--work-dir',
                                  work])
    out = capsys.readouterr().out
    assert f'[demo] generating a CIFAR-10-format dataset in {root} (2 ' \
        'train / 1 test images per class, 32x32, difficulty 0)' in out
    assert osp.isfile(osp.join(root, 'cifar-10-batches-py', 'test_batch'))
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    assert f'top-1 {metrics["accuracy/top1"]:.2f}%  top-5 ' \
        f'{metrics["accuracy/top5"]:.2f}%' in out
    assert re.search(r'\[demo\] s1\.loss_aux +\d', out)
    # the data is found again; --iters is refused for the epoch-based demo
    demo_tool.ensure_data('classification', root)
    assert f'using the synthetic dataset in {root}' in \
        capsys.readouterr().out
    with pytest.raises(SystemExit, match='epoch-based'):
        demo_tool.main(['--task', 'classification', '--data-root', root,
                        '--iters', '5'])
