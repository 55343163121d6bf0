# InfoPro K=4 for DeepLabV3-R101-D8 (Cityscapes 512x1024, 4 GPUs x 2 images,
# SGD poly, 40k iterations, SyncBN): the paper setting's config with the
# default local heads (a module whose stage the auxiliary head reads gets a
# head that reads it too, and a MAN lookahead). The cuts are the planner's for
# batch 4 at 512x1024:
#   python tools/plan_splits.py configs/infopro/deeplabv3_r101_k4_cityscapes.py \
#       --num-modules 4 --batch 4 --size 512 1024 --fake
_base_ = 'deeplabv3_r101_k2_cityscapes.py'
model = dict(
    backbone=dict(split_points=[(3, 2), (3, 12), (3, 22)]),
    local_heads=dict(
        _delete_=True, loss_recons_weight=1.5, loss_task_weight=1.0,
        norm_cfg=dict(type='SyncBN', requires_grad=True)))
