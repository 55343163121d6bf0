# CPU demo: a small DeepLabV3 (ResNetV1c-18, 32 base channels, output
# stride 8) trained with InfoPro K=2 on the generated synthetic Cityscapes
# (tools/make_synthetic_cityscapes.py) at 128x256. A few minutes on 2 cores.
_base_ = [
    'mmseg::_base_/models/deeplabv3_r50-d8.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmseg_infopro'], allow_failed_imports=False)
data_root = 'data/synthetic_cityscapes/'
crop_size = (128, 256)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='InfoProEncoderDecoder',
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        type='InfoProResNetV1c',
        depth=18,
        stem_channels=32,
        base_channels=32,
        norm_cfg=norm_cfg,
        split_points=[(3, 0)]),
    decode_head=dict(
        in_channels=256, channels=64, dilations=(1, 6, 12, 18),
        norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=128, channels=32, norm_cfg=norm_cfg),
    local_heads=[
        dict(
            loss_recons_weight=1.5,
            loss_task_weight=1.0,
            task_head=dict(channels=64, dropout_ratio=0.1),
            recons_head=dict(channels=(32, 16, 8)),
            norm_cfg=norm_cfg)
    ])
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
    batch_size=4,
    num_workers=2,
    dataset=dict(
        type='CheckedCityscapesDataset',
        data_root=data_root,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    dataset=dict(
        type='CheckedCityscapesDataset',
        data_root=data_root,
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
optimizer = dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
max_iters = 300
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=100,
                    max_keep_ckpts=2),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
# exact resume: RNG states travel in the checkpoints; every 100 iterations
# each module's peak memory and the E2E estimate in the log (MemTracker on
# the CPU: that iteration runs slower)
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='InfoProMemoryHook', interval=100)
]
model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')
