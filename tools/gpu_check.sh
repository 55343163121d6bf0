#!/usr/bin/env bash
# One-GPU check of what the CPU machines cannot check (docs/gpu_check.md):
#   (a) AMP (AmpOptimWrapper, fp16 autocast) K=2 steps against fp32 steps
#   (b) tools/benchmark.py on the GPU (E2E, checkpointing, K=2 config cut,
#       K=4 planned) against the same steps measured with --fake on the CPU
#   (c) the paired step-time ratios (InfoPro / E2E) from (b)
#   (d) InfoProMemoryHook's CUDA path through tools/train.py
#   (e) the tests that are skipped without a GPU
# Every stage runs under `timeout` and the next one runs whatever happened;
# one JSON collects every figure and each stage's status (and log tail).
#
#   bash tools/gpu_check.sh [OUT_JSON] [--cpu]
#   bash tools/gpu_check.sh --fetch-wheels     # on a machine with PyPI
#
# OUT_JSON defaults to $OUT/gpu_check.json when $OUT is set, else
# work_dirs/gpu_check.json; the stage logs go to gpu_check.log beside it.
# --cpu (or --dry-run): the same stages on the CPU with small sizes (the
# demo model, 64x128), to test this script without a GPU.
# Environment: PYTHON (default python3), GPU_CHECK_BUDGET (seconds for all
# stages, default 450), WHEELS (default .whl: wheels installed first with
# pip --no-index into /tmp/gpu_check_site when mmseg is not importable).
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 2
PYTHON=${PYTHON:-python3}
MODE=cuda
OUT_JSON=
FETCH=0
for arg in "$@"; do
    case $arg in
        --cpu|--dry-run) MODE=cpu ;;
        --fetch-wheels) FETCH=1 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        -*) echo "gpu_check.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
        *) OUT_JSON=$arg ;;
    esac
done
WHEELS=${WHEELS:-$REPO/.whl}

# the packages the GPU image lacks (docs/gpu_check.md); pure Python except
# wcwidth (abi3), fetched for the image's Python 3.12
if [ "$FETCH" = 1 ]; then
    mkdir -p "$WHEELS"
    exec "$PYTHON" -m pip download --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$WHEELS" \
        mmengine==0.10.7 mmsegmentation==1.2.2 mmcv-lite==2.1.0 addict \
        yapf platformdirs termcolor prettytable wcwidth ftfy
fi

if [ -z "$OUT_JSON" ]; then
    if [ -n "${OUT:-}" ]; then OUT_JSON=$OUT/gpu_check.json
    else OUT_JSON=$REPO/work_dirs/gpu_check.json; fi
fi
mkdir -p "$(dirname "$OUT_JSON")"
OUT_JSON=$(cd "$(dirname "$OUT_JSON")" && pwd)/$(basename "$OUT_JSON")
LOG=${OUT_JSON%.json}.log
STAGES=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
BUDGET=${GPU_CHECK_BUDGET:-450}
START=$(date +%s)
DEADLINE=$((START + BUDGET))
: > "$LOG"
export PYTHONUNBUFFERED=1 PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

if [ "$MODE" = cuda ]; then
    DEVICE=cuda
    CONFIG=configs/infopro/deeplabv3_r101_k2_cityscapes.py
    SHAPE=(--batch 2 --size 512 1024)
    TIMING=(--repeat 10 --warmup 2)
    TIMING4=(--repeat 5 --warmup 1)
    CPU_FLAG=()
else
    DEVICE=cpu
    CONFIG=configs/demo/deeplabv3_r18-tiny_k2_synthetic.py
    SHAPE=(--batch 2 --size 64 128)
    TIMING=(--repeat 2 --warmup 1 --threads 1)
    TIMING4=(--repeat 1 --warmup 0 --threads 1)
    CPU_FLAG=(--cpu)
fi

# status of a stage as JSON (the log's tail too when it did not succeed)
write_status() {  # name status rc elapsed limit command
    "$PYTHON" - "$STAGES" "$@" <<'EOF'
import json, os, sys
stages, name, status, rc, elapsed, limit, command = sys.argv[1:8]
log = os.path.join(stages, name + '.log')
entry = dict(status=status, rc=int(rc), elapsed_s=float(elapsed),
             limit_s=int(limit), command=command)
if status != 'ok' and os.path.exists(log):
    with open(log, errors='replace') as f:
        entry['log_tail'] = f.read()[-3000:]
with open(os.path.join(stages, name + '.status.json'), 'w') as f:
    json.dump(entry, f, indent=1)
EOF
}

# run_stage NAME CAP_SECONDS COMMAND...: at most CAP seconds, and never
# past the budget's deadline; status ok / failed / timeout / skipped
run_stage() {
    local name=$1 cap=$2
    shift 2
    local left=$((DEADLINE - $(date +%s)))
    local limit=$((cap < left ? cap : left))
    if [ "$limit" -lt 10 ]; then
        echo "== $name: skipped (budget spent)" | tee -a "$LOG"
        write_status "$name" skipped -1 0 0 "$*"
        return 1
    fi
    echo "== $name (at most ${limit}s): $*" | tee -a "$LOG"
    local t0 rc status
    t0=$(date +%s.%N)
    timeout -k 10 "$limit" "$@" > "$STAGES/$name.log" 2>&1
    rc=$?
    local elapsed
    elapsed=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')
    case $rc in
        0) status=ok ;;
        124|137) status=timeout ;;
        *) status=failed ;;
    esac
    { echo "-- $name: $status (rc $rc, ${elapsed}s)"; cat "$STAGES/$name.log"; } >> "$LOG"
    echo "-- $name: $status (rc $rc, ${elapsed%.*}s)"
    write_status "$name" "$status" "$rc" "$elapsed" "$limit" "$*"
    return $rc
}

echo "gpu_check: mode $MODE, budget ${BUDGET}s, results $OUT_JSON"

# 0. packages (carried wheels) and the environment
if ! "$PYTHON" -c 'import mmseg, mmengine, mmcv' 2>/dev/null; then
    if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        run_stage setup 120 "$PYTHON" -m pip install -q --no-index --no-deps \
            --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site \
            "$WHEELS"/*.whl
        export PYTHONPATH="$PYTHONPATH:/tmp/gpu_check_site"
    else
        echo "gpu_check: mmseg/mmengine/mmcv not importable and no wheels in" \
            "$WHEELS (bash tools/gpu_check.sh --fetch-wheels)" | tee -a "$LOG"
    fi
fi
run_stage env 60 "$PYTHON" - "$STAGES/env.json" "$MODE" <<'EOF'
import json, platform, subprocess, sys
out, mode = sys.argv[1:3]
env = dict(mode=mode, python=platform.python_version())
import torch
env.update(torch=torch.__version__, cuda=torch.version.cuda,
           cuda_available=torch.cuda.is_available(),
           device_name=torch.cuda.get_device_name() if
           torch.cuda.is_available() else platform.machine())
for name in ('mmengine', 'mmseg', 'mmcv', 'numpy'):
    try:
        env[name] = __import__(name).__version__
    except Exception as e:  # recorded, the stages say more
        env[name] = f'not importable: {e}'
try:
    env['nvidia_smi'] = subprocess.run(
        ['nvidia-smi', '--query-gpu=name,memory.total,driver_version',
         '--format=csv,noheader'], capture_output=True, text=True,
        timeout=20).stdout.strip()
except Exception:
    pass
print(env)
json.dump(env, open(out, 'w'), indent=1)
EOF

# (b) fake-mode K=2 rows on the CPU, in the background while (a) runs
# (waited for before (b)'s GPU timing, so that it does not disturb it)
run_stage b_fake_k2 240 "$PYTHON" tools/benchmark.py "$CONFIG" --fake \
    "${SHAPE[@]}" --schedules e2e,checkpoint,infopro \
    --out "$STAGES/b_fake_k2.json" &
FAKE_K2=$!

# (a) AMP against fp32
run_stage a_amp 150 "$PYTHON" tools/gpu_check.py amp "$STAGES/a_amp.json" \
    "${CPU_FLAG[@]}"

wait $FAKE_K2
# (b)+(c) GPU rows: E2E, checkpointing, K=2 config cut, paired timing
run_stage b_device_k2 180 "$PYTHON" tools/benchmark.py "$CONFIG" \
    --device "$DEVICE" "${SHAPE[@]}" --schedules e2e,checkpoint,infopro \
    "${TIMING[@]}" --out "$STAGES/b_device_k2.json"
# K=4 with planned cuts (the planner measures every block on the GPU)
run_stage b_device_k4 180 "$PYTHON" tools/benchmark.py "$CONFIG" \
    --device "$DEVICE" "${SHAPE[@]}" --num-modules 4 --schedules e2e,infopro \
    "${TIMING4[@]}" --out "$STAGES/b_device_k4.json"
# the same K=4 step in fake mode: the GPU run's cuts (or planned anew)
CUTS=$("$PYTHON" tools/gpu_check.py cuts "$STAGES/b_device_k4.json" 2>/dev/null)
if [ -n "$CUTS" ]; then K4=(--cuts "$CUTS"); else K4=(--num-modules 4); fi
run_stage b_fake_k4 240 "$PYTHON" tools/benchmark.py "$CONFIG" --fake \
    "${SHAPE[@]}" "${K4[@]}" --schedules e2e,infopro \
    --out "$STAGES/b_fake_k4.json" &
FAKE_K4=$!

# (d) InfoProMemoryHook through tools/train.py
run_stage d_hook 150 "$PYTHON" tools/gpu_check.py hook "$STAGES/d_hook.json" \
    "$STAGES/hook_run" "${CPU_FLAG[@]}"

# (e) the test files with GPU-only tests
mapfile -t GPU_TESTS < <(grep -lE 'skipif\(\s*not torch\.cuda\.is_available|requires_cuda' tests/test_*.py)
if [ ${#GPU_TESTS[@]} -gt 0 ]; then
    run_stage e_pytest_run 240 "$PYTHON" -m pytest "${GPU_TESTS[@]}" -q -rs \
        -p no:cacheprovider --junitxml "$STAGES/e_pytest.xml"
    run_stage e_pytest 30 "$PYTHON" tools/gpu_check.py pytest-counts \
        "$STAGES/e_pytest.json" "$STAGES/e_pytest.xml"
fi

wait $FAKE_K4
"$PYTHON" tools/gpu_check.py report "$OUT_JSON" "$STAGES" | tee -a "$LOG"
RC=${PIPESTATUS[0]}
echo "gpu_check: $(( $(date +%s) - START ))s; logs $LOG"
rm -rf "$STAGES"
exit "$RC"
