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
# InfoProMemoryHook: every 50 iterations, each module's peak memory, the E2E
# estimate and the saving in the log (mem.s1, mem.s2, mem.e2e_est, mem.saving)
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='InfoProMemoryHook', interval=50)
]
