# Accuracy study: CIFAR ResNet-32 on a generated CIFAR-10-format set made
# hard enough not to saturate (difficulty 0.8: overlapping class cues,
# distractor stripes, more noise; 500 train / 100 test images per class),
# the classification demo's recipe at batch 24 (lr 0.01875: 0.05 x 24 / 64;
# its warm-up + cosine schedule ending at the last iteration), 1200
# iterations, seeds 0, 1, 2 (fixed before any result). Run:
#   python tools/accuracy_study.py \
#       configs/study/resnet32_cifar10_synthetic.py \
#       --out docs/accuracy/resnet32_cifar10_synthetic.json \
#       --plot docs/accuracy/resnet32_cifar10_synthetic.png --markdown
# Variants (the release's even split and loss weights):
#   e2e          K=1
#   k2           InfoPro K=2, contrastive local loss (the release's)
#   k2_softmax   InfoPro K=2, softmax (cross-entropy) local loss
#   k4           InfoPro K=4, contrastive
#   greedy       K=2, the softmax aux loss only, no reconstruction
demo = 'configs/demo/resnet32_k2_synthetic-cifar10.py'
study = dict(
    name='resnet32_cifar10_synthetic',
    metric='accuracy/top1',
    iters=1200,
    seeds=[0, 1, 2],
    data=dict(kind='synthetic_cifar10', root='data/study/cifar10_d0.8',
              train_per_class=500, test_per_class=100, seed=0,
              difficulty=0.8),
    options={'train_dataloader.batch_size': 24,
             'optim_wrapper.optimizer.lr': 0.01875},
    variants=dict(
        e2e=dict(config=demo,
                 options={'model.backbone.split_points': [],
                          'model.local_heads': None,
                          'model.local_loss_weights': None}),
        k2=dict(config=demo),
        k2_softmax=dict(config=demo,
                        options={'model.local_heads.aux_mode': 'softmax'}),
        k4=dict(config=demo,
                options={'model.backbone.split_points.num_modules': 4,
                         'model.local_loss_weights.first': (6, 0),
                         'model.local_loss_weights.last': (1, 2)}),
        greedy=dict(config=demo,
                    options={'model.local_heads.aux_mode': 'softmax',
                             'model.local_heads.recons_head': None}),
        # issue 23 (the study's local heads are the release's, what a user
        # gets: no capacity axis here). K=4 with the config's weights (the
        # first module's aux weight is 0: its lookahead gets no loss), and
        # the greedy (softmax only, uniform weights) K=4 with and without
        # AugLocal, as AugLocal is published; K=8 likewise.
        k4_auglocal=dict(
            config=demo,
            options={'model.backbone.split_points.num_modules': 4,
                     'model.local_loss_weights.first': (6, 0),
                     'model.local_loss_weights.last': (1, 2),
                     'model.local_heads.lookahead.type': 'auglocal',
                     'model.local_heads.lookahead.depth': 2}),
        k4_man=dict(
            config=demo,
            options={'model.backbone.split_points.num_modules': 4,
                     'model.local_loss_weights.first': (6, 0),
                     'model.local_loss_weights.last': (1, 2),
                     'model.local_heads.lookahead.type': 'man',
                     'model.local_heads.lookahead.momentum': 0.995}),
        k4_greedy=dict(
            config=demo,
            options={'model.backbone.split_points.num_modules': 4,
                     'model.local_loss_weights': None,
                     'model.local_heads.aux_mode': 'softmax',
                     'model.local_heads.recons_head': None}),
        k4_auglocal_ce=dict(
            config=demo,
            options={'model.backbone.split_points.num_modules': 4,
                     'model.local_loss_weights': None,
                     'model.local_heads.aux_mode': 'softmax',
                     'model.local_heads.recons_head': None,
                     'model.local_heads.lookahead.type': 'auglocal',
                     'model.local_heads.lookahead.depth': 2}),
        k8=dict(
            config=demo,
            options={'model.backbone.split_points.num_modules': 8,
                     'model.local_loss_weights.first': (5, 0),
                     'model.local_loss_weights.last': (0, 2)}),
        k8_auglocal=dict(
            config=demo,
            options={'model.backbone.split_points.num_modules': 8,
                     'model.local_loss_weights.first': (5, 0),
                     'model.local_loss_weights.last': (0, 2),
                     'model.local_heads.lookahead.type': 'auglocal',
                     'model.local_heads.lookahead.depth': 2}),
        k8_man=dict(
            config=demo,
            options={'model.backbone.split_points.num_modules': 8,
                     'model.local_loss_weights.first': (5, 0),
                     'model.local_loss_weights.last': (0, 2),
                     'model.local_heads.lookahead.type': 'man',
                     'model.local_heads.lookahead.momentum': 0.995})),
    baseline='e2e',
    threads=1)
