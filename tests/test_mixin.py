"""Issue 2 item 8: the README's snippet turns a stock mmseg DeepLabV3
config into InfoPro; it builds and trains through mmengine's Runner."""
import os.path as osp
import re

from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO


def readme_snippet():
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    block = re.search(r'<!-- mix-in:start -->\s*```python\n(.*?)```\s*'
                      r'<!-- mix-in:end -->', text, re.S)
    assert block, 'README.md lost its mix-in snippet markers'
    return block.group(1)


def test_readme_snippet_trains_a_stock_config(synthetic_root, tmp_path):
    snippet = readme_snippet()
    assert "_base_ = 'mmseg::" in snippet
    path = tmp_path / 'mixin.py'
    path.write_text(snippet)
    cfg = Config.fromfile(str(path))
    # what the snippet produced from the stock config
    assert cfg.model.type == 'InfoProEncoderDecoder'
    assert cfg.model.backbone.type == 'InfoProResNetV1c'
    assert cfg.model.backbone.depth == 18  # from the stock base
    assert cfg.model.decode_head.type == 'ASPPHead'

    # run it on the generated data at a CPU-friendly size
    cfg.work_dir = str(tmp_path / 'work')
    cfg.model.pretrained = None  # no downloads here
    cfg.model.data_preprocessor.size = (64, 128)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                dict(type='PackSegInputs')]
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.dataset.data_root = synthetic_root
        loader.dataset.pipeline = pipeline
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.batch_size = 2 if name == 'train_dataloader' else 1
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    cfg.param_scheduler[0].end = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    runner = Runner.from_cfg(cfg)
    # SyncBN of the stock config becomes BN in a single-process run
    model = runner.model
    assert model.num_modules == 2 and len(model.local_heads) == 1
    assert model.local_heads[0].in_channels == 128  # layer2 of ResNet-18
    runner.train()
    logs = runner.message_hub.log_scalars
    for key in ('train/s1.loss_task', 'train/s1.loss_recons',
                'train/decode.loss_ce', 'train/aux.loss_ce'):
        assert key in logs, key
    assert 'val/mIoU' in logs
