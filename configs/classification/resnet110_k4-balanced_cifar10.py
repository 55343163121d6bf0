# CIFAR ResNet-110 on CIFAR-10, K=4: InfoPro* (the release's memory-balanced split), the
# contrastive local loss and the release's loss weights (recons, aux),
# interpolated from the first local module to the last. Cuts (ours, before
# (stage, block)): [(1, 7), (1, 15), (2, 9)].
# Softmax local loss: --cfg-options model.local_heads.aux_mode=softmax
_base_ = './_base_/resnet110_cifar10.py'
model = dict(
    backbone=dict(split_points=dict(table='balanced', num_modules=4)),
    local_loss_weights=dict(first=(5, 0), last=(5, 0.1)))
