# CIFAR ResNet-110 on SVHN, K=2: InfoPro (the release's even split), the
# contrastive local loss and the release's loss weights (recons, aux),
# interpolated from the first local module to the last. Cuts (ours, before
# (stage, block)): [(2, 9)].
# Softmax local loss: --cfg-options model.local_heads.aux_mode=softmax
_base_ = './_base_/resnet110_svhn.py'
model = dict(
    backbone=dict(split_points=dict(table='even', num_modules=2)),
    local_loss_weights=dict(first=(1, 0.1), last=(0, 0)))
