#!/usr/bin/env bash
# Every figure of docs/benchmarks.md, regenerated: JSON in docs/bench/,
# the plot in docs/benchmarks_peak_vs_k.png.
#   bash tools/run_benchmarks.sh          # fake-mode memory rows (~4 min)
#   bash tools/run_benchmarks.sh --time   # + CPU step-time rows (~45 min)
#   bash tools/run_benchmarks.sh --gpu    # + GPU rows (needs CUDA)
set -euo pipefail
cd "$(dirname "$0")/.."
R101=configs/infopro/deeplabv3_r101_k2_cityscapes.py
R50=configs/infopro/deeplabv3_r50_k2_cityscapes.py
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

for arg in "$@"; do
  case $arg in
    --time)
      python tools/benchmark.py $R50 --batch 2 --size 256 512 --threads 1 \
        --repeat 7 --warmup 1 --flops --out $B/r50_b2_256x512_cpu_1thread.json
      python tools/benchmark.py $R50 --batch 2 --size 256 512 \
        --repeat 9 --warmup 1 --flops --out $B/r50_b2_256x512_cpu_2threads.json ;;
    --gpu)
      python tools/benchmark.py $R101 --device cuda --batch 2 --size 512 1024 \
        --repeat 10 --warmup 3 --out $B/r101_b2_512x1024_cuda.json
      python tools/benchmark.py $R101 --device cuda --batch 2 --size 512 1024 \
        --num-modules 2 --schedules e2e,infopro --repeat 10 --warmup 3 \
        --out $B/r101_b2_512x1024_cuda_auto_k2.json ;;
    *) echo "unknown argument $arg (use --time or --gpu)" >&2; exit 2 ;;
  esac
done
