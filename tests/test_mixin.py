"""The README's snippets turn stock mmseg configs (DeepLabV3/ResNetV1c,
SegFormer/MiT, UPerNet/Swin) into InfoPro; each builds and trains through
mmengine's Runner on the generated data."""
import os.path as osp
import re

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO

SNIPPETS = {
    # marker: (backbone type, stock depth key and value, decode head,
    #          local head in_channels at the README's cut)
    'mix-in': ('InfoProResNetV1c', ('depth', 18), 'ASPPHead', 128),
    'mix-in-segformer': ('InfoProMixVisionTransformer',
                         ('num_layers', [2, 2, 2, 2]), 'SegformerHead', 160),
    'mix-in-swin': ('InfoProSwinTransformer', ('depths', [2, 2, 6, 2]),
                    'UPerHead', 384),
}


def readme_snippet(marker='mix-in'):
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    block = re.search(rf'<!-- {marker}:start -->\s*```python\n(.*?)```\s*'
                      rf'<!-- {marker}:end -->', text, re.S)
    assert block, f'README.md lost its {marker} snippet markers'
    return block.group(1)


@pytest.mark.parametrize('marker', list(SNIPPETS))
def test_readme_snippet_trains_a_stock_config(marker, synthetic_root,
                                              tmp_path, one_thread):
    backbone, (key, value), head, in_channels = SNIPPETS[marker]
    snippet = readme_snippet(marker)
    assert "_base_ = 'mmseg::" in snippet
    path = tmp_path / 'mixin.py'
    path.write_text(snippet)
    cfg = Config.fromfile(str(path))
    # what the snippet produced from the stock config
    assert cfg.model.type == 'InfoProEncoderDecoder'
    assert cfg.model.backbone.type == backbone
    assert cfg.model.backbone[key] == value  # from the stock base
    assert cfg.model.decode_head.type == head
    assert cfg.model_wrapper_cfg.type == 'InfoProDistributedDataParallel'

    # run it on the generated Cityscapes-format data at a CPU-friendly
    # size (the Swin snippet's stock config is ADE20K: 19 classes here)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.visualizer.name = f'visualizer_{marker}_{tmp_path.name}'
    cfg.model.pretrained = None  # no downloads here
    cfg.model.backbone.init_cfg = None
    cfg.model.data_preprocessor.size = (64, 128)
    cfg.model.test_cfg = dict(mode='whole')
    for name in ('decode_head', 'auxiliary_head'):
        if cfg.model.get(name):
            cfg.model[name].num_classes = 19
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                dict(type='PackSegInputs')]
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        split = 'train' if name == 'train_dataloader' else 'val'
        loader.dataset = dict(
            type='CityscapesDataset', data_root=synthetic_root,
            data_prefix=dict(img_path=f'leftImg8bit/{split}',
                             seg_map_path=f'gtFine/{split}'),
            pipeline=pipeline)
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.batch_size = 2 if name == 'train_dataloader' else 1
    cfg.val_evaluator = cfg.test_evaluator = dict(type='IoUMetric',
                                                  iou_metrics=['mIoU'])
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2,
                         val_interval=2)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False,
                                begin=0, end=2)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        by_epoch=False, interval=2)
    cfg.default_hooks.logger.interval = 1
    runner = Runner.from_cfg(cfg)
    # SyncBN of the stock config becomes BN in a single-process run
    model = runner.model
    assert model.num_modules == 2 and len(model.local_heads) == 1
    assert model.local_heads[0].in_channels == in_channels
    runner.train()
    logs = runner.message_hub.log_scalars
    keys = ['train/s1.loss_task', 'train/s1.loss_recons',
            'train/decode.loss_ce']
    if cfg.model.get('auxiliary_head'):
        keys.append('train/aux.loss_ce')
    for key in keys:
        assert key in logs, key
    assert 'val/mIoU' in logs
