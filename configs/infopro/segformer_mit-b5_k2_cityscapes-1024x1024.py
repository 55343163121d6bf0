# SegFormer MiT-B5, Cityscapes 1024x1024 (mmseg's stock config: 8 GPUs x 1
# image, AdamW, 160k iterations) trained as K=2 InfoPro local modules.
# The cut is the planner's for batch 1 at 1024x1024 with the paper's local
# head (docs/benchmarks.md); with the default heads it plans (3, 12), one
# block earlier:
#   python tools/plan_splits.py configs/infopro/segformer_mit-b5_k2_cityscapes-1024x1024.py \
#       --num-modules 2 --batch 1 --size 1024 1024 --fake
# Local loss: image reconstruction + task, weights as the paper's batch-8
# setting; the local head reads the stages module 1 hands to the
# SegformerHead and looks ahead (MAN), the default.
_base_ = 'mmseg::segformer/segformer_mit-b5_8xb1-160k_cityscapes-1024x1024.py'
custom_imports = dict(imports=['mmseg_infopro'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(type='InfoProMixVisionTransformer', split_points=[(3, 13)]),
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
