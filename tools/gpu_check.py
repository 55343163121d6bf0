"""The Python stages of tools/gpu_check.sh (see docs/gpu_check.md).

    python tools/gpu_check.py amp OUT.json [--cpu]
    python tools/gpu_check.py hook OUT.json WORK_DIR [--cpu]
    python tools/gpu_check.py cuts BENCHMARK.json
    python tools/gpu_check.py pytest-counts OUT.json JUNIT.xml
    python tools/gpu_check.py report OUT.json STAGE_DIR

The command-line face of ``tools/harness/device_check.py``, which
says what each stage measures and when it passes:

``amp``   AMP (AmpOptimWrapper, dynamic loss scale, fp16 autocast) against
          fp32 training steps (``amp_check``); ``--cpu``: the CPU stand-in
          (bf16 autocast, a CPU GradScaler, the small demo model).
``hook``  a few iterations of tools/train.py with InfoProMemoryHook at
          interval 1 (``hook_check``).
``cuts``  prints the InfoPro cuts of a tools/benchmark.py JSON as
          ``"3,13;4,0"`` (for ``--cuts``).
``pytest-counts``  passed / failed / skipped counts of a JUnit XML file.
``report`` merges the stage results in STAGE_DIR (``<stage>.status.json``
          written by gpu_check.sh, ``<stage>.json`` by the stage) into one
          JSON with the derived figures, and prints a short summary.

Exit status 0 when the stage's checks passed, else 1.
"""
import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: the stages that need only the standard library
STDLIB_STAGES = ('cuts', 'pytest-counts', 'report')


def load_device_check(stdlib_only=False):
    """``harness.device_check`` (it imports only the standard library; its
    stages import torch, mmengine and the package when they run, so the
    cuts, counts and report come out also where the package cannot be
    imported, e.g. a GPU image whose mmseg wheels did not install)."""
    tools = osp.dirname(osp.abspath(__file__))
    if tools not in sys.path:
        sys.path.insert(0, tools)
    if REPO not in sys.path:
        sys.path.insert(1, REPO)
    from harness import device_check
    return device_check


def save_json(obj, path):
    load_device_check(stdlib_only=True)  # puts tools/ on sys.path
    from harness.output import save_json as save
    save(obj, path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    a = sub.add_parser('amp', help='AMP against fp32 training steps')
    a.add_argument('out')
    a.add_argument('--cpu', action='store_true')
    h = sub.add_parser('hook', help='InfoProMemoryHook via tools/train.py')
    h.add_argument('out')
    h.add_argument('work_dir')
    h.add_argument('--cpu', action='store_true')
    c = sub.add_parser('cuts', help='the InfoPro cuts of a benchmark JSON')
    c.add_argument('benchmark_json')
    t = sub.add_parser('pytest-counts', help='the counts of a JUnit XML')
    t.add_argument('out')
    t.add_argument('junit')
    r = sub.add_parser('report', help='merge the stage results')
    r.add_argument('out')
    r.add_argument('stage_dir')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    dc = load_device_check(stdlib_only=args.cmd in STDLIB_STAGES)
    try:
        if args.cmd == 'cuts':
            print(dc.benchmark_cuts(args.benchmark_json))
            return 0
        if args.cmd == 'amp':
            result = dc.amp_check(cpu=args.cpu)
            line = dc.amp_summary(result)
        elif args.cmd == 'hook':
            result = dc.hook_check(args.work_dir, cpu=args.cpu)
            line = dc.hook_summary(result)
        elif args.cmd == 'pytest-counts':
            result = dc.pytest_counts(args.junit)
            line = None  # an unreadable file: the JSON says why
            if 'error' not in result:
                line = f'pytest: {({k: result[k] for k in dc.COUNT_KEYS})}'
        else:
            result = dc.merge_report(args.stage_dir)
            line = '\n'.join(dc.report_lines(result, args.out))
    except dc.DeviceCheckError as error:
        raise SystemExit(str(error)) from None
    save_json(result, args.out)
    if line is not None:
        print(line)
    return 0 if result['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
