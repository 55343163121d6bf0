# The CPU demo's DeepLabV3 (ResNetV1c-18, 32 base channels, output stride
# 8) as InfoPro K=4: one cut before each of layer2, layer3 and layer4 (the
# modules end at strides 4, 8 and 8), the demo's local head (1.5 x image
# reconstruction + 1 x task) at every cut; the reconstruction decoder of
# the stride-4 cut upsamples twice (x4), the others three times.
_base_ = '../../demo/deeplabv3_r18-tiny_k2_synthetic.py'
norm_cfg = dict(type='BN', requires_grad=True)
local_head = dict(
    loss_recons_weight=1.5,
    loss_task_weight=1.0,
    task_head=dict(channels=64, dropout_ratio=0.1),
    recons_head=dict(channels=(32, 16, 8)),
    norm_cfg=norm_cfg,
    head_aware=False,
    lookahead=dict(type=None))
model = dict(
    backbone=dict(split_points=[(2, 0), (3, 0), (4, 0)]),
    local_heads=[
        dict(local_head, recons_head=dict(channels=(16, 8))), local_head,
        local_head
    ])
