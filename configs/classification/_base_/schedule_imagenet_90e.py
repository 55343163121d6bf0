# The release's ImageNet schedule: SGD with Nesterov momentum 0.9, weight
# decay 1e-4, lr 0.4 for batch 1024 (8 GPUs x 128), cosine decay per epoch,
# 90 epochs.
epochs = 90
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.4, momentum=0.9, nesterov=True,
                   weight_decay=1e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=epochs,
         T_max=epochs, eta_min=0.0)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs,
                 val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# the batch the lr is meant for (mmengine's --auto-scale-lr reads this)
auto_scale_lr = dict(enable=False, base_batch_size=1024)
