# STL-10 (train_X.bin / train_y.bin / test_X.bin / test_y.bin in
# data/stl10, 96x96): 4-pixel padded random crop and horizontal flip;
# normalised with mean = std = 127.5 as the release. The release trains
# STL-10 with batch 128 at lr 0.1. The loaders are CIFAR-10's with the
# dataset swapped.
_base_ = './cifar10.py'
dataset_type = 'STL10Dataset'
data_root = 'data/stl10'
data_preprocessor = dict(mean=[127.5] * 3, std=[127.5] * 3)
train_pipeline = [
    dict(type='RandomCropWithPadding', size=96, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs')
]
train_dataloader = dict(batch_size=128, dataset=dict(
    type=dataset_type, data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=128,
                      dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
