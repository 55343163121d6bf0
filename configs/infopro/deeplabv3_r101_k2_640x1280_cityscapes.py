# InfoPro* K=2 with the memory it saves spent on 640x1280 crops (batch 8):
# lr 0.015, local loss = 2 * reconstruction + 1 * task (paper, Table 5).
_base_ = './deeplabv3_r101_k2_cityscapes.py'
crop_size = (640, 1280)
model = dict(
    data_preprocessor=dict(size=crop_size),
    local_heads=[
        dict(type='InfoProPaperLocalHead', loss_recons_weight=2.0,
             loss_task_weight=1.0,
             norm_cfg=dict(type='SyncBN', requires_grad=True))
    ])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(2048, 1024),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
optimizer = dict(lr=0.015)
optim_wrapper = dict(optimizer=optimizer)
