# ImageNet (data/imagenet/train/<class>/*.JPEG and val/<class>/*, or a list
# file): the release's augmentation (random resized crop 224, flip; resize
# 256 + centre crop 224 for testing), ImageNet mean/std. 128 images per GPU,
# 8 GPUs: the release's batch 1024. The loaders are CIFAR-10's with the
# dataset, pipelines and sizes swapped.
_base_ = './cifar10.py'
dataset_type = 'ImageNetDataset'
data_root = 'data/imagenet'
num_classes = 1000
data_preprocessor = dict(mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCropCls', size=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeCenterCrop', size=224, resize_short=256),
    dict(type='PackClsInputs')
]
train_dataloader = dict(batch_size=128, num_workers=8, dataset=dict(
    type=dataset_type, data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=128, num_workers=8, dataset=dict(
    type=dataset_type, data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
