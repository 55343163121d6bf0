# UPerNet Swin-B (ImageNet-1k pretrained, window 7), ADE20K 512x512, mmseg's
# stock config (8 GPUs x 2 images, AdamW, 160k iterations) trained as K=2
# InfoPro local modules. ADE20K because mmseg ships Swin UPerNet for ADE20K
# only (its published mIoU is the reference to compare with).
# The cut is the planner's for batch 2 at 512x512 with the paper's local head
# (with the default heads, which read the stages module 1 hands to the
# UPerHead and look ahead, it plans (3, 11)):
#   python tools/plan_splits.py configs/infopro/upernet_swin-b_k2_ade20k-512x512.py \
#       --num-modules 2 --batch 2 --size 512 512 --fake
# Local loss: task + reconstruction of the module's input features, which
# Pathak et al. (arXiv 2212.14215) found better than the image for Swin.
_base_ = 'mmseg::swin/swin-base-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmseg_infopro'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(type='InfoProSwinTransformer', split_points=[(3, 12)]),
    local_heads=dict(
        recons_target='features',
        loss_recons_weight=1.0,
        loss_task_weight=1.0,
        norm_cfg=norm_cfg))
model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='InfoProMemoryHook', interval=50)
]
