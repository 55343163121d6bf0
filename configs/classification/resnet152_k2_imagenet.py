# ResNet-152 on ImageNet, InfoPro* K=2 as the release: the first module ends
# after layer2 block 5 (our cut: before (2, 6)); local loss 5 x BCE + 1 x
# cross-entropy. Published top-1 error 21.45% (15.53 GB per GPU).
_base_ = './_base_/resnet101_imagenet.py'
model = dict(
    backbone=dict(depth=152, split_points=[(2, 6)]),
    local_heads=dict(loss_recons_weight=5.0, loss_aux_weight=1.0))
