# Screening for issue 23 (head-aware local heads, AugLocal, MAN, local-head
# capacity) on seed 3 only: outside the study's seeds 0/1/2, fixed before
# any result. Same data, iterations, schedule and variants as
# configs/study/upernet_swin-tiny_synthetic.py. Run (a subset: --variants):
#   python tools/accuracy_study.py configs/study/screen/upernet_swin-tiny_screen.py \
#       --out docs/accuracy/screen/upernet_swin-tiny_screen.json --markdown
_base_ = '../upernet_swin-tiny_synthetic.py'
study = dict(name='upernet_swin-tiny_screen', seeds=[3])
