# ResNeXt-101 32x8d on ImageNet, InfoPro* K=2 as the release: the first
# module ends after layer2 block 2 (our cut: before (2, 3)); local loss 5 x
# BCE + 0.75 x cross-entropy. Published top-1 error 20.35% (11.55 GB).
_base_ = './_base_/resnet101_imagenet.py'
model = dict(
    backbone=dict(type='InfoProResNeXt', groups=32, base_width=8,
                  split_points=[(2, 3)]),
    local_heads=dict(loss_recons_weight=5.0, loss_aux_weight=0.75))
