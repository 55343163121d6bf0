"""Shared fixtures: generated Cityscapes-format data and the demo config."""
import logging
import os.path as osp
import sys
from contextlib import contextmanager

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import mmseg_infopro  # noqa: E402,F401  (compat first, registers modules)
from mmseg_infopro.datasets import make_synthetic_cityscapes  # noqa: E402

DEMO_K2 = osp.join(REPO, 'configs', 'demo',
                   'deeplabv3_r18-tiny_k2_synthetic.py')
DEMO_K1 = osp.join(REPO, 'configs', 'demo',
                   'deeplabv3_r18-tiny_k1_synthetic.py')


@contextmanager
def single_thread():
    """One intra-op thread (as the torchrun workers, OMP_NUM_THREADS=1): on
    a loaded 2-core machine two spinning OpenMP threads can make the small
    steps of these tests many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def captured_log(level=logging.WARNING):
    """Messages logged to mmengine's current logger (a handler of its own:
    the logger's stream handler may hold a stream of an earlier test's
    capture)."""
    from mmengine.logging import MMLogger
    records = []

    class Handler(logging.Handler):

        def emit(self, record):
            records.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Handler(level=level)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def one_thread():
    with single_thread():
        yield


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
    """A small generated dataset (8 train / 2 val images, 64x128),
    shared by the whole session: treat it as read-only."""
    root = str(tmp_path_factory.mktemp('synthetic_cityscapes'))
    make_synthetic_cityscapes(root, num_train=8, num_val=2, height=64,
                              width=128, seed=0)
    return root


def demo_cfg(root, work_dir, config=DEMO_K2, max_iters=4, **overrides):
    """The demo config pointed at ``root``, shrunk for tests: 64x128
    crops, batch 2, no dataloader workers, ``max_iters`` iterations."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    # mmengine reuses a visualizer by name: one per run, so every run
    # writes its own vis_data/scalars.json
    cfg.visualizer.name = f'visualizer_{work_dir}'
    cfg.model.data_preprocessor.size = (64, 128)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = max_iters
    cfg.param_scheduler[0].end = max_iters
    cfg.default_hooks.checkpoint.interval = max_iters
    cfg.default_hooks.logger.interval = 1
    cfg.merge_from_dict(overrides)
    return cfg


def export_model(model, model_cfg, tmp_path):
    """Save ``model`` (trained, in eval mode) as a training checkpoint with
    19 class names, dump its config, and run tools/export_checkpoint.py on
    them; returns the tool's result (``dropped``, ``config``, ...)."""
    from mmengine.config import Config
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import export_checkpoint
    ckpt = tmp_path / 'trained.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=tuple(
                        str(i) for i in range(19))))), ckpt)
    train_cfg = tmp_path / 'train_cfg.py'
    Config(dict(model=model_cfg)).dump(str(train_cfg))
    return export_checkpoint.main([str(ckpt), '--out',
                                   str(tmp_path / 'plain.pth'),
                                   '--config', str(train_cfg)])
