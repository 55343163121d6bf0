# Shared by the accuracy-study models (configs/study/): the generated
# Cityscapes-format data (tools/make_synthetic_cityscapes.py) at its own
# size, the CPU demo's pipelines (no resize, random flip), batch 4, and an
# iteration-based runtime. The study tool sets the data root, the seed, the
# iterations and the schedule's length itself.
_base_ = [
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmseg_infopro'], allow_failed_imports=False)
data_root = 'data/study/cityscapes_128x256/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4, num_workers=2,
    dataset=dict(type='CheckedCityscapesDataset', data_root=data_root,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2,
    dataset=dict(type='CheckedCityscapesDataset', data_root=data_root,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[[
            dict(type='RandomFlip', prob=0., direction='horizontal'),
            dict(type='RandomFlip', prob=1., direction='horizontal')
        ], [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]])
]
max_iters = 1200
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters, max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
custom_hooks = [dict(type='RNGStateHook')]
model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')
