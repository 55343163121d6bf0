# InfoPro* K=2 with the memory it saves spent on batch 12 (4 GPUs x 3):
# lr 0.015, local loss = 1 * reconstruction + 0.1 * task (paper, Table 5).
_base_ = './deeplabv3_r101_k2_cityscapes.py'
model = dict(local_heads=[
    dict(type='InfoProPaperLocalHead', loss_recons_weight=1.0,
         loss_task_weight=0.1,
         norm_cfg=dict(type='SyncBN', requires_grad=True))
])
train_dataloader = dict(batch_size=3)
optimizer = dict(lr=0.015)
optim_wrapper = dict(optimizer=optimizer)
