#!/usr/bin/env bash
# Every figure of docs/benchmarks.md, regenerated: JSON in docs/bench/, the
# plots in docs/.
#   bash tools/run_benchmarks.sh          # DeepLabV3-R101 fake-mode rows,
#                                         # fronts and budget plans (~10 min)
#   bash tools/run_benchmarks.sh --transformers   # + SegFormer-B5, Swin-B
#                                         # fake-mode rows and front (~1 h)
#   bash tools/run_benchmarks.sh --time   # + CPU step-time rows (~1.5 h)
#   bash tools/run_benchmarks.sh --classification  # + CIFAR ResNet-110 and
#                                         # ImageNet ResNet-101 rows (~15 min)
#   bash tools/run_benchmarks.sh --gpu    # + GPU rows (needs CUDA)
set -euo pipefail
cd "$(dirname "$0")/.."
R101=configs/infopro/deeplabv3_r101_k2_cityscapes.py
R50=configs/infopro/deeplabv3_r50_k2_cityscapes.py
SEG=configs/infopro/segformer_mit-b5_k2_cityscapes-1024x1024.py
SWIN=configs/infopro/upernet_swin-b_k2_ade20k-512x512.py
B=docs/bench
FAKE="--batch 4 --size 512 1024 --fake --flops"

python tools/benchmark.py $R101 $FAKE --out $B/r101_b4_512x1024_fake_paper_cut.json
for k in 2 3 4 5 6 8; do
  python tools/benchmark.py $R101 $FAKE --num-modules $k \
    --schedules e2e,infopro --out $B/r101_b4_512x1024_fake_auto_k$k.json
done
python tools/plan_splits.py $R101 --num-modules 2 --batch 4 --size 512 1024 \
  --fake --out $B/r101_b4_512x1024_fake_plan_k2.json
python tools/benchmark.py plot docs/benchmarks_peak_vs_k.png \
  $B/r101_b4_512x1024_fake_paper_cut.json $B/r101_b4_512x1024_fake_auto_k*.json
# cuts + checkpointing: the front and the plans for 0.45x and 0.30x of E2E
# (16785.5 MiB)
python tools/plan_splits.py $R101 --pareto --batch 4 --size 512 1024 --fake \
  --out $B/r101_b4_512x1024_fake_pareto.json --plot docs/benchmarks_pareto_r101.png
python tools/plan_splits.py $R101 --memory-budget 7553MiB --batch 4 --size 512 1024 \
  --fake --write configs/infopro/deeplabv3_r101_budget-0.45x_cityscapes.py \
  --out $B/r101_b4_512x1024_fake_budget_0.45x.json
python tools/plan_splits.py $R101 --memory-budget 5035MiB --batch 4 --size 512 1024 \
  --fake --write configs/infopro/deeplabv3_r101_budget-0.30x_cityscapes.py \
  --out $B/r101_b4_512x1024_fake_budget_0.30x.json

for arg in "$@"; do
  case $arg in
    --transformers)
      for b in 1 2; do
        python tools/benchmark.py $SEG --batch $b --size 1024 1024 --fake --flops \
          --out $B/segformer_b5_b${b}_1024x1024_fake.json
        python tools/benchmark.py $SEG --batch $b --size 1024 1024 --fake --flops \
          --num-modules 4 --schedules e2e,infopro \
          --out $B/segformer_b5_b${b}_1024x1024_fake_auto_k4.json
      done
      for b in 2 4; do
        python tools/benchmark.py $SWIN --batch $b --size 512 512 --fake --flops \
          --out $B/swin_b_b${b}_512x512_fake.json
        python tools/benchmark.py $SWIN --batch $b --size 512 512 --fake --flops \
          --num-modules 4 --schedules e2e,infopro \
          --out $B/swin_b_b${b}_512x512_fake_auto_k4.json
      done
      for k in 2 3; do  # more planned points for the plots
        python tools/benchmark.py $SEG --batch 1 --size 1024 1024 --fake --flops \
          --num-modules $k --schedules e2e,infopro \
          --out $B/segformer_b5_b1_1024x1024_fake_auto_k$k.json
        python tools/benchmark.py $SWIN --batch 2 --size 512 512 --fake --flops \
          --num-modules $k --schedules e2e,infopro \
          --out $B/swin_b_b2_512x512_fake_auto_k$k.json
      done
      python tools/benchmark.py plot docs/benchmarks_peak_vs_k_segformer_b5.png \
        $B/segformer_b5_b1_1024x1024_fake.json $B/segformer_b5_b1_1024x1024_fake_auto_k*.json
      python tools/benchmark.py plot docs/benchmarks_peak_vs_k_swin_b.png \
        $B/swin_b_b2_512x512_fake.json $B/swin_b_b2_512x512_fake_auto_k*.json
      python tools/plan_splits.py $SEG --pareto --batch 1 --size 1024 1024 --fake \
        --out $B/segformer_b5_b1_1024x1024_fake_pareto.json \
        --plot docs/benchmarks_pareto_segformer_b5.png ;;
    --time)
      python tools/benchmark.py $R50 --batch 2 --size 256 512 --threads 1 \
        --repeat 7 --warmup 1 --flops --out $B/r50_b2_256x512_cpu_1thread.json
      python tools/benchmark.py $R50 --batch 2 --size 256 512 \
        --repeat 9 --warmup 1 --flops --out $B/r50_b2_256x512_cpu_2threads.json
      # the 0.45x plan (cuts + checkpointing), timed against E2E
      python tools/plan_splits.py $R50 --memory-budget 0.45x --batch 4 \
        --size 512 1024 --fake --write work_dirs/plans/r50_budget-0.45x.py \
        --out $B/r50_b4_512x1024_fake_budget_0.45x.json
      python tools/benchmark.py work_dirs/plans/r50_budget-0.45x.py --batch 2 \
        --size 256 512 --schedules e2e,infopro --repeat 9 --warmup 1 --flops \
        --out $B/r50_b2_256x512_cpu_2threads_plan_0.45x.json ;;
    --classification)
      C=configs/classification
      CF="--batch 1024 --fake --flops"
      python tools/benchmark.py $C/resnet110_k2_cifar10.py $CF \
        --out $B/r110_cifar10_b1024_fake_k2.json
      for cfg in k2-balanced k3-balanced k4-balanced k4; do
        python tools/benchmark.py $C/resnet110_${cfg}_cifar10.py $CF \
          --schedules e2e,infopro --out $B/r110_cifar10_b1024_fake_$cfg.json
      done
      python tools/benchmark.py $C/resnet110_k2_cifar10.py $CF --num-modules 4 \
        --schedules e2e,infopro --out $B/r110_cifar10_b1024_fake_auto_k4.json
      python tools/plan_splits.py $C/resnet110_k2_cifar10.py --memory-budget 0.30x \
        --batch 1024 --fake --write work_dirs/plans/r110_budget-0.30x.py \
        --out $B/r110_cifar10_b1024_fake_budget_0.30x.json
      python tools/benchmark.py $C/resnet101_k2_imagenet.py --batch 64 \
        --size 224 224 --fake --flops --out $B/r101_imagenet_b64_fake_k2.json ;;
    --gpu)
      python tools/benchmark.py $R101 --device cuda --batch 2 --size 512 1024 \
        --repeat 10 --warmup 3 --out $B/r101_b2_512x1024_cuda.json
      python tools/benchmark.py $R101 --device cuda --batch 2 --size 512 1024 \
        --num-modules 2 --schedules e2e,infopro --repeat 10 --warmup 3 \
        --out $B/r101_b2_512x1024_cuda_auto_k2.json ;;
    *) echo "unknown argument $arg (use --transformers, --time, --classification or --gpu)" >&2
       exit 2 ;;
  esac
done
