# CIFAR-10 (the python pickle batches, data/cifar10/cifar-10-batches-py/ or
# the files directly in data/cifar10): 4-pixel padded random crop and
# horizontal flip; normalised with the release's CIFAR mean and std.
dataset_type = 'CIFAR10Dataset'
data_root = 'data/cifar10'
num_classes = 10
data_preprocessor = dict(
    type='ImgDataPreprocessor', mean=[125.3, 123.0, 113.9],
    std=[63.0, 62.1, 66.7], bgr_to_rgb=True)
train_pipeline = [
    dict(type='RandomCropWithPadding', size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs')
]
test_pipeline = [dict(type='PackClsInputs')]
train_dataloader = dict(
    batch_size=1024, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, test_mode=False,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1024, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ClsAccuracy', topk=(1, 5))
test_evaluator = val_evaluator
