# SVHN (train_32x32.mat / test_32x32.mat in data/svhn): padded random crop,
# no flip (digits); normalised with mean = std = 127.5 as the release.
dataset_type = 'SVHNDataset'
data_root = 'data/svhn'
num_classes = 10
data_preprocessor = dict(
    type='ImgDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3,
    bgr_to_rgb=True)
train_pipeline = [
    dict(type='RandomCropWithPadding', size=32, padding=4),
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
