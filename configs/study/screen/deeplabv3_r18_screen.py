# Screening for issue 23 (head-aware local heads, AugLocal, MAN, local-head
# capacity) on seed 3 only: outside the study's seeds 0/1/2, fixed before
# any result. Same data, iterations, schedule and variants as
# configs/study/deeplabv3_r18_synthetic.py. Run (a subset: --variants):
#   python tools/accuracy_study.py configs/study/screen/deeplabv3_r18_screen.py \
#       --out docs/accuracy/screen/deeplabv3_r18_screen.json --markdown
_base_ = '../deeplabv3_r18_synthetic.py'
study = dict(name='deeplabv3_r18_screen', seeds=[3])
