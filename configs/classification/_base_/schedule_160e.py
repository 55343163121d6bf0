# The release's CIFAR/SVHN schedule: SGD with Nesterov momentum 0.9, weight
# decay 1e-4, batch 1024 at lr 0.8, 160 epochs, cosine decay after a
# 10-epoch linear warm-up (per iteration).
epochs = 160
warmup_epochs = 10
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.8, momentum=0.9, nesterov=True,
                   weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=warmup_epochs,
         end=epochs, T_max=epochs - warmup_epochs, eta_min=0.0,
         convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs,
                 val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
