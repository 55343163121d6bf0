# InfoPro plan for memory budget 5035 MiB, by
# python tools/plan_splits.py configs/infopro/deeplabv3_r101_k2_cityscapes.py --memory-budget 5035MiB --batch 4 --size 512 1024 --fake --write configs/infopro/deeplabv3_r101_budget-0.30x_cityscapes.py --out docs/bench/r101_b4_512x1024_fake_budget_0.30x.json
# (batch 4, 512x1024, SGD): K=3 cuts [3,9, 4,0] full [stem, 1,0, 1,1, 1,2, 2,0, 2,1, 2,2, 2,3, 3,0, 3,9, 3,10, 3,11, 3,12, 3,13, 3,14, 3,15] selective [3,1, 3,2, 3,3, 3,4, 3,5, 3,6, 3,7, 3,8, 3,16, 3,17, 3,18, 3,19, 3,20, 3,21, 3,22, 4,0, 4,1, 4,2]: peak 5018.5 MiB (0.299x E2E), FLOPs 1.142x E2E
_base_ = 'deeplabv3_r101_k2_cityscapes.py'
model = dict(
    backbone=dict(
        split_points=[(3, 9), (4, 0)],
        checkpoint_blocks=['stem', (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (2, 3), (3, 0), (3, 9), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14), (3, 15)],
        selective_checkpoint_blocks=[(3, 1), (3, 2), (3, 3), (3, 4), (3, 5), (3, 6), (3, 7), (3, 8), (3, 16), (3, 17), (3, 18), (3, 19), (3, 20), (3, 21), (3, 22), (4, 0), (4, 1), (4, 2)]),
    local_heads=[
        dict(type='InfoProPaperLocalHead', loss_recons_weight=1.5, loss_task_weight=1.0, norm_cfg=dict(type='SyncBN', requires_grad=True)),
        dict(type='InfoProPaperLocalHead', loss_recons_weight=1.5, loss_task_weight=1.0, norm_cfg=dict(type='SyncBN', requires_grad=True)),
    ])
