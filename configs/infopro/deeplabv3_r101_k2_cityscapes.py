# InfoPro* K=2, the paper's setting: DeepLabV3-R101-D8, Cityscapes 512x1024,
# 4 GPUs x 2 images, SGD lr 0.01 poly, 40k iterations, SyncBN, one cut
# before layer3 block 13 (13 of 23 layer3 blocks in the first module),
# local loss = 1.5 * reconstruction + 1 * task.
_base_ = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-40k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmseg_infopro'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(type='InfoProResNetV1c', split_points=[(3, 13)]),
    local_heads=[
        # the paper's plain local head (the default adds head-aware fusion
        # and a MAN lookahead where a module hands stages to the heads)
        dict(type='InfoProPaperLocalHead', loss_recons_weight=1.5,
             loss_task_weight=1.0, norm_cfg=norm_cfg)
    ])
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
