# SegFormer MiT-B5, Cityscapes 1024x1024 (mmseg's stock config: 8 GPUs x 1
# image, AdamW, 160k iterations) trained as K=4 InfoPro local modules.
# The cuts are the planner's for batch 1 at 1024x1024 with the default local
# heads (0.360x of the E2E peak at 1.064x FLOPs, docs/benchmarks.md):
#   python tools/plan_splits.py configs/infopro/segformer_mit-b5_k2_cityscapes-1024x1024.py \
#       --num-modules 4 --batch 1 --size 1024 1024 --fake
# Local loss: image reconstruction + task; every module hands stages to the
# SegformerHead, so each local head reads them (head-aware) and looks ahead
# (MAN), the default.
_base_ = 'mmseg::segformer/segformer_mit-b5_8xb1-160k_cityscapes-1024x1024.py'
custom_imports = dict(imports=['mmseg_infopro'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(
        type='InfoProMixVisionTransformer',
        split_points=[(2, 3), (3, 11), (3, 28)]),
    local_heads=dict(
        loss_recons_weight=1.5, loss_task_weight=1.0, norm_cfg=norm_cfg))
model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')
train_dataloader = dict(dataset=dict(type='CheckedCityscapesDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCityscapesDataset'))
test_dataloader = val_dataloader
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='InfoProMemoryHook', interval=50)
]
