# SVHN (train_32x32.mat / test_32x32.mat in data/svhn): padded random crop,
# no flip (digits); normalised with mean = std = 127.5 as the release.
# The loaders are CIFAR-10's with the dataset swapped.
_base_ = './cifar10.py'
dataset_type = 'SVHNDataset'
data_root = 'data/svhn'
data_preprocessor = dict(mean=[127.5] * 3, std=[127.5] * 3)
train_pipeline = [
    dict(type='RandomCropWithPadding', size=32, padding=4),
    dict(type='PackClsInputs')
]
train_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
