"""Classification through the user's commands, on generated CIFAR-10 files:
``tools/train.py`` (epoch-based, K=2, contrastive), ``tools/test.py``
(``accuracy/top1``, ``accuracy/top5``), exact resume, a 2-process gloo run
with identical replicas (``tools/dist_train.sh``), the memory tools on a
classification config, and errors for bad data."""
import json
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from mmseg_infopro.safe_loading import load_checkpoint as load_ckpt
from conftest import REPO, single_thread

sys.path.insert(0, osp.join(REPO, 'tools'))
import test as test_tool  # noqa: E402  (tools/test.py)
import train as train_tool  # noqa: E402  (tools/train.py)

from mmseg_infopro.datasets.classification import (  # noqa: E402
    ClsDataNotFoundError, make_synthetic_cifar10)

DEMO = osp.join(REPO, 'configs', 'demo', 'resnet32_k2_synthetic-cifar10.py')


@pytest.fixture(scope='module')
def cifar_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cifar10'))
    make_synthetic_cifar10(root, train_per_class=4, test_per_class=2, seed=0)
    return root


def small_cfg(root, work_dir, epochs=2, depth=20, **model):
    """The demo config, shrunk: ResNet-20, 40 images, batch 10 (4
    iterations an epoch), no workers."""
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(work_dir)
    cfg.model.backbone.depth = depth
    cfg.model.backbone.split_points = [(2, 1)]
    cfg.model.update(model)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.dataset.data_root = root
        loader.num_workers = 0
        loader.batch_size = 10
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = epochs
    cfg.param_scheduler = [
        dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=epochs,
             T_max=epochs, convert_to_iter_based=True)
    ]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1,
                                        max_keep_ckpts=5)
    cfg.visualizer.name = f'visualizer_{work_dir}'
    return cfg


def run_train(cfg, *flags):
    path = osp.join(cfg.work_dir, 'cfg.py')
    import os
    os.makedirs(cfg.work_dir, exist_ok=True)
    cfg.dump(path)
    with single_thread():
        return train_tool.main([path, *flags])


def scalars(work_dir):
    import glob
    rows = []
    for path in sorted(glob.glob(osp.join(str(work_dir), '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            rows += [json.loads(line) for line in f]
    return rows


@pytest.fixture(scope='module')
def trained(cifar_root, tmp_path_factory):
    work = tmp_path_factory.mktemp('cls_k2')
    cfg = small_cfg(cifar_root, work)
    runner = run_train(cfg)
    return cfg, runner, work


def test_train_logs_every_module_and_validates(trained):
    cfg, runner, work = trained
    assert runner.epoch == 2 and runner.iter == 8
    rows = scalars(work)
    train = [r for r in rows if 'loss' in r]
    assert len(train) == 8
    for key in ('s1.loss_aux', 's1.loss_recons', 'loss_ce', 'acc_top1'):
        assert all(key in r for r in train), key
    for r in train:  # the logged total is the sum of the modules' losses
        assert r['loss'] == pytest.approx(
            r['s1.loss_aux'] + r['s1.loss_recons'] + r['loss_ce'], rel=1e-4)
    val = [r for r in rows if 'accuracy/top1' in r]
    assert len(val) == 1
    assert 0.0 <= val[0]['accuracy/top1'] <= 100.0
    assert val[0]['accuracy/top5'] >= val[0]['accuracy/top1']
    ckpt = load_ckpt(osp.join(str(work), 'epoch_2.pth'))
    keys = list(ckpt['state_dict'])
    assert any(k.startswith('backbone.') for k in keys)
    assert any(k.startswith('head.fc.') for k in keys)
    assert any(k.startswith('local_heads.0.') for k in keys)


def test_tools_test_reports_accuracy(trained, tmp_path):
    cfg, _, work = trained
    metrics = test_tool.main([
        osp.join(str(work), 'cfg.py'),
        osp.join(str(work), 'epoch_2.pth'), '--work-dir', str(tmp_path)
    ])
    assert set(metrics) >= {'accuracy/top1', 'accuracy/top5'}
    # 20 test images: top-1 is a multiple of 5 %
    assert metrics['accuracy/top1'] % 5 == pytest.approx(0, abs=1e-6)
    # the validation at the end of training saw the same weights and data
    val = [r for r in scalars(work) if 'accuracy/top1' in r][-1]
    assert metrics['accuracy/top1'] == pytest.approx(val['accuracy/top1'])


def test_resume_ends_with_the_same_weights(cifar_root, trained, tmp_path):
    """Killed after epoch 1 and resumed: the same weights as the
    uninterrupted run (random crops and flips, shuffling, contrastive
    batches: RNGStateHook)."""
    cfg, _, work = trained
    first = small_cfg(cifar_root, tmp_path / 'part', epochs=2)
    first.train_cfg.max_epochs = 1  # "killed" after epoch 1
    first.param_scheduler = cfg.param_scheduler
    run_train(first)
    resumed = small_cfg(cifar_root, tmp_path / 'part', epochs=2)
    resumed.visualizer.name += '_resumed'
    runner = run_train(resumed, '--resume')
    assert runner.epoch == 2
    a = load_ckpt(osp.join(str(work), 'epoch_2.pth'))['state_dict']
    b = load_ckpt(str(tmp_path / 'part' / 'epoch_2.pth'))['state_dict']
    assert list(a) == list(b)
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, differ[:5]


def test_two_process_gloo_replicas_stay_identical(cifar_root, tmp_path):
    """tools/dist_train.sh, 2 gloo processes, K=2 with
    InfoProDistributedDataParallel and gradient accumulation 2: after every
    iteration both ranks hold the same parameters; in the accumulation
    iterations every local module has gradients, different on the two
    ranks (no all-reduce under no_sync); the weights moved."""
    from test_distributed import dist_train
    cfg = small_cfg(cifar_root, tmp_path / 'dist', epochs=1)
    cfg.custom_imports = dict(imports=['mmseg_infopro', 'test_distributed'],
                              allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.custom_hooks) + [
        dict(type='DistProbeHook',
             out_file=osp.join(str(tmp_path / 'dist'), 'probe.pt'))
    ]
    cfg.train_dataloader.batch_size = 5
    cfg.optim_wrapper.accumulative_counts = 2
    rec = dist_train(cfg, tmp_path / 'dist')
    assert rec['world_size'] == 2
    assert rec['param_diff'] == [0.0] * 4
    assert rec['grad_present'] == [[True, True], [False, False]] * 2
    for it in (0, 2):
        assert all(d > 0 for d in rec['grad_diff'][it]), rec['grad_diff']
    assert not torch.allclose(rec['params'], rec['initial'])
    assert 'accuracy/top1' in rec['metrics']


def test_missing_data_names_the_files(tmp_path):
    cfg = small_cfg(str(tmp_path / 'nothing'), tmp_path / 'work')
    with pytest.raises(ClsDataNotFoundError,
                       match=r'(?s)data_batch_1.*nothing.*cifar-10-batches-py'):
        run_train(cfg)


def test_benchmark_and_planner_accept_a_classification_config(tmp_path):
    """The memory tools on the shipped ResNet-32 K=2 config (fake mode):
    the JSON's ratios, and a K=3 plan the planner writes into a config
    that builds."""
    from mmseg_infopro.memory.benchmark import run_benchmark
    cfg_path = osp.join(REPO, 'configs', 'classification',
                        'resnet32_k2_cifar10.py')
    result = run_benchmark(cfg_path, batch=128, fake=True, flops=True,
                           hook=False, log=lambda *a: None)
    runs = result['schedules']
    assert set(runs) == {'e2e', 'checkpoint', 'infopro'}
    assert [list(c) for c in runs['infopro']['cuts']] == [[2, 2]]
    assert runs['e2e']['ratio'] == 1.0
    assert 0.3 < runs['infopro']['ratio'] < 1.0
    assert runs['checkpoint']['ratio'] < 1.0
    assert runs['checkpoint']['flops_ratio'] > 1.1
    assert 1.0 < runs['infopro']['flops_ratio'] < 1.1


def test_export_gives_the_end_to_end_classifier(trained, tmp_path):
    """tools/export_checkpoint.py on a classification checkpoint: the
    plain ImageClassifier with the stock CifarResNet, without local heads;
    tools/test.py on the export gives the same accuracy as on the training
    checkpoint."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import export_checkpoint as export_tool
    cfg, _, work = trained
    out = str(tmp_path / 'r20_plain.pth')
    result = export_tool.main([osp.join(str(work), 'epoch_2.pth'),
                               '--out', out])
    assert {k.split('.')[0] for k in result['dropped']} == {'local_heads'}
    plain = Config.fromfile(result['config'])
    assert plain.model.type == 'ImageClassifier'
    assert plain.model.backbone.type == 'CifarResNet'
    assert 'split_points' not in plain.model.backbone
    assert 'local_heads' not in plain.model
    assert plain.custom_imports.imports == ['mmseg_infopro']
    assert 'model_wrapper_cfg' not in plain
    assert not [h for h in plain.get('custom_hooks', [])
                if h['type'] == 'RNGStateHook']
    ckpt = torch.load(out, weights_only=True)
    assert not [k for k in ckpt['state_dict'] if k.startswith('local_')]
    exported = test_tool.main([result['config'], out, '--work-dir',
                               str(tmp_path / 'test_plain')])
    original = test_tool.main([
        osp.join(str(work), 'cfg.py'),
        osp.join(str(work), 'epoch_2.pth'), '--work-dir',
        str(tmp_path / 'test_orig')
    ])
    assert exported['accuracy/top1'] == original['accuracy/top1']
    assert exported['accuracy/top5'] == original['accuracy/top5']
