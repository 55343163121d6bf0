# STL-10 (train_X.bin / train_y.bin / test_X.bin / test_y.bin in
# data/stl10, 96x96): 4-pixel padded random crop and horizontal flip;
# normalised with mean = std = 127.5 as the release. The release trains
# STL-10 with batch 128 at lr 0.1.
dataset_type = 'STL10Dataset'
data_root = 'data/stl10'
num_classes = 10
data_preprocessor = dict(
    type='ImgDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3,
    bgr_to_rgb=True)
train_pipeline = [
    dict(type='RandomCropWithPadding', size=96, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs')
]
test_pipeline = [dict(type='PackClsInputs')]
train_dataloader = dict(
    batch_size=128, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, test_mode=False,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ClsAccuracy', topk=(1, 5))
test_evaluator = val_evaluator
