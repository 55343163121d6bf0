# InfoPro K=4 for DeepLabV3-R101-D8 (Cityscapes 512x1024, 4 GPUs x 2 images,
# SGD poly, 40k iterations, SyncBN) with the default local heads (a module
# whose stage the auxiliary head reads gets a head that reads it too, and a
# MAN lookahead). The cuts are the planner's for batch 4 at 512x1024:
#   python tools/plan_splits.py configs/infopro/deeplabv3_r101_k4_cityscapes.py \
#       --num-modules 4 --batch 4 --size 512 1024 --fake
_base_ = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-40k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmseg_infopro'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(
        type='InfoProResNetV1c', split_points=[(3, 2), (3, 12), (3, 22)]),
    local_heads=dict(
        loss_recons_weight=1.5, loss_task_weight=1.0, norm_cfg=norm_cfg))
model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')
# named errors for a missing/corrupt/mislabelled file (docs/cityscapes.md)
train_dataloader = dict(dataset=dict(type='CheckedCityscapesDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCityscapesDataset'))
test_dataloader = val_dataloader
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='InfoProMemoryHook', interval=50)
]
