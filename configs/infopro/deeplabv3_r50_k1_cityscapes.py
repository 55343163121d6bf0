# End-to-end baseline (K=1) for DeepLabV3-R50-D8 through the InfoPro code.
_base_ = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmseg_infopro'], allow_failed_imports=False)
model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(type='InfoProResNetV1c', split_points=[]))
model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')
# named errors for a missing/corrupt/mislabelled file (docs/cityscapes.md)
train_dataloader = dict(dataset=dict(type='CheckedCityscapesDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCityscapesDataset'))
test_dataloader = val_dataloader
# RNG states in checkpoints: --resume continues the same random stream
custom_hooks = [dict(type='RNGStateHook')]
