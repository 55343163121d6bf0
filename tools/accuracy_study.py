"""Accuracy study: train every variant of a model (E2E, InfoPro K=2 / K=4,
the greedy baseline, other local losses) for the same iterations over
several seeds, and report the final mIoU / top-1 of each.

    python tools/accuracy_study.py configs/study/deeplabv3_r18_synthetic.py \\
        --out docs/accuracy/deeplabv3_r18_synthetic.json \\
        --plot docs/accuracy/deeplabv3_r18_synthetic.png --markdown

Each run is ``python tools/train.py CONFIG --work-dir ... --cfg-options
...`` in a subprocess (its command is kept in the JSON). The JSON is
rewritten after every run: run the same command again after an
interruption and it skips the finished runs. ``--dry-run`` prints the
commands; ``--report-only`` prints / plots what the JSON holds. The logic
lives in ``tools/harness/study.py``; docs/accuracy.md describes the
studies.
"""
import argparse
import os.path as osp
import shlex
import sys

try:
    import mmseg_infopro  # noqa: F401  (compat first)
except ImportError:  # running from a source checkout without install
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_infopro  # noqa: F401

from harness.study import (  # noqa: E402
    StudyError, fill_per_class, load_results, load_spec, markdown_table,
    per_class_table, plot_study, run_study, write_results)


def _list(text, kind=str):
    items = [t for t in text.split(',') if t.strip()]
    try:
        return [kind(t.strip()) for t in items]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected a comma-separated list of {kind.__name__}, got '
            f'{text!r}')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train every variant of a study spec over its seeds and '
        'collect the final metric (resumable).')
    parser.add_argument('spec', help='study spec (configs/study/*.py)')
    parser.add_argument(
        '--out', default=None,
        help='results JSON (default: work_dirs/study/<name>.json)')
    parser.add_argument('--work-dir', default='work_dirs/study',
                        help='runs go to WORK_DIR/<name>/<variant>/seed<k> '
                        '(default: %(default)s)')
    parser.add_argument('--variants', type=_list, default=None,
                        help='comma-separated subset of the spec\'s variants')
    parser.add_argument('--seeds', type=lambda t: _list(t, int),
                        default=None,
                        help='comma-separated subset of the spec\'s seeds')
    parser.add_argument(
        '--iters', type=int, default=None,
        help='training iterations of every run (default: the spec\'s); '
        'refused if --out holds runs of another count')
    parser.add_argument(
        '--threads', type=int, default=None,
        help='OMP_NUM_THREADS of the runs (default: the spec\'s threads; on '
        'a shared machine 1 avoids OpenMP contention)')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the training commands only')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: report what --out holds')
    parser.add_argument('--delete-checkpoints', action='store_true',
                        help='remove each run\'s checkpoint once its metric '
                        'is read')
    parser.add_argument('--markdown', action='store_true',
                        help='print the results as a markdown table')
    parser.add_argument(
        '--per-class', action='store_true',
        help='print the mean per-class IoU of every variant (segmentation); '
        'runs recorded without it get it from their logs, saved in --out')
    parser.add_argument('--plot', default=None, metavar='OUT.png',
                        help='draw mean and spread per variant (matplotlib)')
    args = parser.parse_args(argv)
    if args.iters is not None and args.iters < 1:
        parser.error(f'--iters must be >= 1, got {args.iters}')
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    if args.dry_run and args.report_only:
        parser.error('--dry-run and --report-only exclude each other')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        spec = load_spec(args.spec)
        out = args.out or osp.join('work_dirs', 'study', f'{spec.name}.json')
        if args.report_only:
            results = load_results(out)
            if results is None:
                raise StudyError(f'{out} does not exist: nothing to report')
        else:
            command = shlex.join(['python', 'tools/accuracy_study.py'] +
                                 list(sys.argv[1:] if argv is None else argv))
            results = run_study(
                spec, out, work_dir=args.work_dir, variants=args.variants,
                seeds=args.seeds, iters=args.iters, threads=args.threads,
                dry_run=args.dry_run,
                keep_checkpoints=not args.delete_checkpoints,
                study_command=command)
        if args.dry_run:
            return results
        total = len(spec.variants) * len(spec.seeds)
        print(f'[study] {spec.name}: {len(results["runs"])}/{total} runs in '
              f'{out}')
        if args.markdown:
            print()
            print(markdown_table(results))
            print()
        if args.per_class:
            before = [bool(r.get('per_class')) for r in results['runs']]
            missing = fill_per_class(results)
            if [bool(r.get('per_class')) for r in results['runs']] != before:
                write_results(out, results)
            if missing and len(missing) < len(results['runs']):
                print(f'[study] no per-class IoU for {", ".join(missing)} '
                      '(no per-class table in its log, or the log is gone)')
            print()
            print(per_class_table(results))
            print()
        if args.plot:
            print(f'[study] plot: {plot_study(results, args.plot)}')
    except StudyError as exc:
        raise SystemExit(f'[study] error: {exc}')
    return results


if __name__ == '__main__':
    main()
