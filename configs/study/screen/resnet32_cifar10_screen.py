# Screening for issue 23 (AugLocal, MAN at K=4 and K=8) on seed 3 only:
# outside the study's seeds 0/1/2, fixed before any result. Same data,
# iterations, schedule and variants as
# configs/study/resnet32_cifar10_synthetic.py. Run (a subset: --variants):
#   python tools/accuracy_study.py configs/study/screen/resnet32_cifar10_screen.py \
#       --out docs/accuracy/screen/resnet32_cifar10_screen.json --markdown
_base_ = '../resnet32_cifar10_synthetic.py'
study = dict(name='resnet32_cifar10_screen', seeds=[3])
