"""Measuring and planning the memory of an InfoPro training step.

* :mod:`.tracking`: peak memory of one step on any device (MemTracker on
  the CPU, also under FakeTensorMode; ``max_memory_allocated`` on CUDA),
  FLOP counting, interleaved step timing, and building one schedule of a
  config (E2E, E2E + checkpointing, InfoPro, a plan);
* :mod:`.profile`: the unit-by-unit memory and FLOP profile of a model and
  its predictions for any plan (cuts + per-unit checkpointing);
* :mod:`.planning`: cut planning for K modules, the plan of least FLOPs for
  a memory budget, and the Pareto front.

It reaches models only through the cut-able backbone contract
(``models/backbones/base.py``) and the engine's protocol
(``engine/local_learning.py``): a new task or backbone family needs no edit
here.
"""
from .planning import (lowest_peak, minmax_partition, minsum_partition,
                       pareto_front, plan_cuts, plan_for_budget)
from .profile import MemoryProfile, Plan, measure_profile
from .tracking import (GiB, MiB, PeakTracker, count_step_flops, fake_mode,
                       measure_schedule, measure_step_memory, prepare_step,
                       time_steps)

__all__ = [
    'PeakTracker', 'measure_step_memory', 'count_step_flops', 'time_steps',
    'fake_mode', 'prepare_step', 'measure_schedule', 'MiB', 'GiB',
    'MemoryProfile', 'Plan', 'measure_profile', 'minmax_partition',
    'minsum_partition', 'plan_cuts', 'plan_for_budget', 'pareto_front',
    'lowest_peak'
]
