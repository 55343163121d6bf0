# Runtime shared by the classification configs: mmseg's registry scope (the
# package registers its classifiers, datasets and metric there), epoch-based
# logging and checkpoints, exact resume (RNGStateHook).
default_scope = 'mmseg'
custom_imports = dict(imports=['mmseg_infopro'], allow_failed_imports=False)
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3,
                    save_best='accuracy/top1', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='RNGStateHook')]
# one DDP per local module in multi-GPU runs (docs/distributed.md)
model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')
