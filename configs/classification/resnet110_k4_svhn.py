# CIFAR ResNet-110 on SVHN, K=4: InfoPro (the release's even split), the
# contrastive local loss and the release's loss weights (recons, aux),
# interpolated from the first local module to the last. Cuts (ours, before
# (stage, block)): [(1, 12), (2, 8), (3, 4)].
# Softmax local loss: --cfg-options model.local_heads.aux_mode=softmax
_base_ = './_base_/resnet110_svhn.py'
model = dict(
    backbone=dict(split_points=dict(table='even', num_modules=4)),
    local_loss_weights=dict(first=(5, 0), last=(0.5, 1)))
