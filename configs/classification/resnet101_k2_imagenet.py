# ResNet-101 on ImageNet, InfoPro* K=2 as the release: the first module ends
# after layer2 block 0 (our cut: before (2, 1)); local loss 5 x BCE
# reconstruction + 0.75 x cross-entropy. Published top-1 error 21.85%
# (12.06 GB per GPU).
_base_ = './_base_/resnet101_imagenet.py'
model = dict(
    backbone=dict(split_points=[(2, 1)]),
    local_heads=dict(loss_recons_weight=5.0, loss_aux_weight=0.75))
