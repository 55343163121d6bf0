"""Plans and cuts in words (log lines and error messages)."""
from .profile import Plan
from .tracking import MiB


def fmt_cuts(cuts) -> str:
    """``[(3, 13), (4, 0)]`` -> ``'3,13;4,0'`` (``'-'`` for none)."""
    return ';'.join(f'{a},{b}' for a, b in cuts) if cuts else '-'


def fmt_units(units) -> str:
    """``['stem', (1, 0)]`` -> ``'stem, 1,0'`` (``'-'`` for none)."""
    return ', '.join('stem' if u == 'stem' else f'{u[0]},{u[1]}'
                     for u in units) or '-'


def describe(plan: Plan, pred: dict, e2e: dict) -> str:
    """One plan in a line: K, cuts, checkpointed units, its predicted
    peak and FLOPs against the predicted E2E step ``e2e``."""
    ckpt = plan.checkpoint()
    return (f'K={plan.num_modules} cuts [{fmt_units(plan.cuts)}] '
            f'full [{fmt_units(ckpt["full"])}] selective '
            f'[{fmt_units(ckpt["selective"])}]: peak '
            f'{pred["peak"] / MiB:.1f} MiB ({pred["peak"] / e2e["peak"]:.3f}x'
            f' E2E), FLOPs {pred["flops"] / e2e["flops"]:.3f}x E2E')
