"""mmengine Runner end to end on generated Cityscapes-format data:
tools/train.py -> validation mIoU -> --resume -> tools/test.py; the
checkpoint in plain mmseg; exact resume (issue 2 item 9, issue 5 item 2)."""
import copy
import glob
import json
import os.path as osp
import re
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmseg.registry import MODELS

from mmseg_infopro.safe_loading import load_checkpoint as load_ckpt
from conftest import REPO, demo_cfg

sys.path.insert(0, osp.join(REPO, 'tools'))
import test as test_tool  # noqa: E402  (tools/test.py)
import train as train_tool  # noqa: E402  (tools/train.py)


def write_cfg(cfg, path):
    cfg.dump(str(path))
    return str(path)


def scalars(work_dir):
    """The json log lines (iteration records) of a run."""
    [path] = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f]


def logged_lr(work_dir):
    """``[(iteration, lr), ...]`` from the text logs of every run in
    ``work_dir``, oldest first."""
    found = []
    for path in sorted(glob.glob(osp.join(str(work_dir), '*', '*.log'))):
        with open(path) as f:
            for line in f:
                m = re.search(r'Iter\(train\) \[\s*(\d+)/\d+\]\s+lr: (\S+)',
                              line)
                if m:
                    found.append((int(m.group(1)), float(m.group(2))))
    return found


@pytest.fixture(scope='module')
def trained(synthetic_root, tmp_path_factory):
    """4 iterations of the K=2 demo through tools/train.py, validation at
    the end."""
    work = tmp_path_factory.mktemp('train')
    cfg = demo_cfg(synthetic_root, work, max_iters=4)
    path = write_cfg(cfg, work / 'cfg.py')
    runner = train_tool.main([path, '--work-dir', str(work)])
    return dict(work=str(work), cfg=path, runner=runner)


def test_train_logs_every_module_and_validates(trained):
    records = scalars(trained['work'])
    train = [r for r in records if 'loss' in r]
    assert [r['iter'] for r in train] == [1, 2, 3, 4]
    for key in ('s1.loss_task', 's1.loss_recons', 's1.acc_seg',
                'decode.loss_ce', 'aux.loss_ce', 'lr'):
        assert all(key in r for r in train), key
    val = [r for r in records if 'mIoU' in r]
    assert len(val) == 1 and 0 <= val[0]['mIoU'] <= 100
    assert osp.isfile(osp.join(trained['work'], 'iter_4.pth'))
    ckpt = load_ckpt(osp.join(trained['work'], 'iter_4.pth'),
                           map_location='cpu')
    keys = ckpt['state_dict'].keys()
    assert any(k.startswith('local_heads.0.') for k in keys)
    assert any(k.startswith('backbone.layer3.') for k in keys)
    assert 'rng_state' in ckpt


def test_resume_continues_at_the_right_iteration(trained, tmp_path):
    cfg = Config.fromfile(trained['cfg'])
    cfg.train_cfg.max_iters = 6
    cfg.train_cfg.val_interval = 100
    cfg.param_scheduler[0].end = 6
    cfg.default_hooks.checkpoint.interval = 2
    path = write_cfg(cfg, tmp_path / 'cfg6.py')
    runner = train_tool.main([path, '--work-dir', trained['work'],
                              '--resume'])
    assert runner.iter == 6
    records = [r for r in scalars(trained['work']) if 'loss' in r]
    assert [r['iter'] for r in records][-2:] == [5, 6]
    assert osp.isfile(osp.join(trained['work'], 'iter_6.pth'))


def test_tools_test_reports_miou(trained, tmp_path):
    ckpt = osp.join(trained['work'], 'iter_4.pth')
    metrics = test_tool.main([
        trained['cfg'], ckpt, '--work-dir',
        str(tmp_path), '--out',
        str(tmp_path / 'preds'), '--show-dir', 'vis'
    ])
    assert 0 <= metrics['mIoU'] <= 100 and 'aAcc' in metrics
    assert len(glob.glob(str(tmp_path / 'preds' / '*.png'))) == 2
    tta = test_tool.main([trained['cfg'], ckpt, '--work-dir',
                          str(tmp_path / 'tta'), '--tta'])
    assert 0 <= tta['mIoU'] <= 100


def test_tools_give_clear_errors_for_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.py'):
        train_tool.main([str(tmp_path / 'nope.py')])
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        test_tool.main([
            osp.join(REPO, 'configs', 'demo',
                     'deeplabv3_r18-tiny_k2_synthetic.py'),
            str(tmp_path / 'missing.pth')
        ])


def test_checkpoint_loads_into_plain_mmseg(trained):
    """Invariant 4: the Runner checkpoint loads into a stock EncoderDecoder
    (ResNetV1c) whose predictions equal the InfoPro model's; the only keys
    plain mmseg does not know are the local heads'."""
    cfg = Config.fromfile(trained['cfg'])
    ckpt = osp.join(trained['work'], 'iter_4.pth')
    ours = MODELS.build(copy.deepcopy(cfg.model))
    load_checkpoint(ours, ckpt, map_location='cpu', strict=True)

    plain_cfg = copy.deepcopy(cfg.model)
    plain_cfg.type = 'EncoderDecoder'
    plain_cfg.backbone.type = 'ResNetV1c'
    plain_cfg.backbone.pop('split_points')
    plain_cfg.pop('local_heads')
    plain = MODELS.build(plain_cfg)
    state = load_ckpt(ckpt, map_location='cpu')['state_dict']
    missing, unexpected = plain.load_state_dict(state, strict=False)
    assert missing == []
    assert unexpected and all(k.startswith('local_heads.')
                              for k in unexpected)

    from mmengine.dataset import pseudo_collate
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    batch = pseudo_collate([dataset[0], dataset[1]])
    ours.eval(), plain.eval()
    with torch.no_grad():
        a = ours.test_step(batch)
        b = plain.test_step(batch)
    for x, y in zip(a, b):
        assert torch.equal(x.seg_logits.data, y.seg_logits.data)
        assert torch.equal(x.pred_sem_seg.data, y.pred_sem_seg.data)


def _run(root, work, max_iters, resume=False, end=6, seed=0, flip=False,
         val_interval=1000, num_workers=0):
    """The demo, ``max_iters`` iterations of a 6-iteration schedule,
    checkpoints every 3. ``seed``: ``randomness.seed`` (None: no
    ``randomness`` in the config, as in every configs/infopro config);
    ``flip``: keep the RandomFlip augmentation."""
    work.mkdir(exist_ok=True)
    cfg = demo_cfg(root, work, max_iters=max_iters)
    if not flip:
        pipeline = [p for p in cfg.train_pipeline
                    if p['type'] != 'RandomFlip']
        cfg.train_dataloader.dataset.pipeline = pipeline
    if seed is None:
        cfg.pop('randomness', None)
    else:
        cfg.randomness = dict(seed=seed)
    if num_workers:
        cfg.train_dataloader.num_workers = num_workers
        cfg.train_dataloader.persistent_workers = True
    cfg.param_scheduler[0].end = end  # same schedule for both runs
    cfg.train_cfg.val_interval = val_interval
    cfg.default_hooks.checkpoint.interval = 3
    cfg.custom_hooks = [dict(type='RNGStateHook')]
    path = write_cfg(cfg, osp.join(work, f'cfg{max_iters}.py'))
    argv = [path, '--work-dir', str(work)] + (['--resume'] if resume else [])
    return train_tool.main(argv)


def assert_same_weights(a, b):
    a, b = a.model.state_dict(), b.model.state_dict()
    assert a.keys() == b.keys()
    differ = [key for key in a if not torch.equal(a[key], b[key])]
    assert not differ, \
        f'{len(differ)} of {len(a)} tensors differ: {differ[:5]}'


@pytest.mark.usefixtures('one_thread')
def test_interrupted_run_resumes_to_identical_weights(synthetic_root,
                                                      tmp_path):
    """Issue 5: a run stopped after 3 of 6 iterations and resumed ends with
    the same weights (and learning rate) as an uninterrupted run (fixed
    seed, no random augmentation; dropout masks are restored by
    RNGStateHook)."""
    whole = _run(synthetic_root, tmp_path / 'whole', 6)
    first = _run(synthetic_root, tmp_path / 'split', 3)
    assert first.iter == 3
    lr_at_3 = first.optim_wrapper.get_lr()['lr'][0]
    resumed = _run(synthetic_root, tmp_path / 'split', 6, resume=True)
    assert resumed.iter == 6
    split = logged_lr(tmp_path / 'split')
    assert [i for i, _ in split] == [1, 2, 3, 4, 5, 6]
    assert split == logged_lr(tmp_path / 'whole')
    # the lr the first run left for iteration 4 is the one iteration 4 used
    assert split[3][1] == pytest.approx(lr_at_3, rel=1e-4)
    assert_same_weights(whole, resumed)
    assert whole.optim_wrapper.get_lr() == resumed.optim_wrapper.get_lr()


@pytest.mark.usefixtures('one_thread')
def test_resume_without_seed_matches_uninterrupted_run(synthetic_root,
                                                       tmp_path):
    """Issue 11 item 1: as the Cityscapes configs, no ``randomness.seed``.

    The first run draws a seed S; the resumed run draws another one, builds
    its dataloader (sampler order) with it, and mmengine's ``resume``
    re-seeds every generator with S *after* RNGStateHook's
    ``after_load_checkpoint``. The resumed run must still end with exactly
    the weights of an uninterrupted run with seed S: same data order, same
    random flips (drawn in the main process), same dropout masks, with a
    validation at the checkpoint's iteration in between (its dataloader
    draws from the torch generator)."""
    first = _run(synthetic_root, tmp_path / 'split', 3, seed=None, flip=True,
                 val_interval=3)
    seed = first.seed
    meta = load_ckpt(osp.join(tmp_path, 'split', 'iter_3.pth'),
                           map_location='cpu')['meta']
    assert meta['seed'] == seed
    resumed = _run(synthetic_root, tmp_path / 'split', 6, seed=None,
                   flip=True, val_interval=3, resume=True)
    assert resumed.iter == 6 and resumed.seed == seed
    whole = _run(synthetic_root, tmp_path / 'whole', 6, seed=seed, flip=True,
                 val_interval=3)
    assert whole.seed == seed
    assert logged_lr(tmp_path / 'split') == logged_lr(tmp_path / 'whole')
    assert_same_weights(whole, resumed)
