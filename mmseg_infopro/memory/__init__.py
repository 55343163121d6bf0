"""Measuring and planning the memory of an InfoPro training step.

* :mod:`.tracking`: peak memory of one step on any device (MemTracker on
  the CPU, also under FakeTensorMode; ``max_memory_allocated`` on CUDA),
  FLOP counting, interleaved step timing, and building one schedule of a
  config (E2E, E2E + checkpointing, InfoPro, a plan);
* :mod:`.profile`: the unit-by-unit memory and FLOP profile of a model and
  its predictions for any plan (cuts + per-unit checkpointing);
* :mod:`.planning`: cut planning for K modules, the plan of least FLOPs for
  a memory budget, and the Pareto front;
* :mod:`.hook`: ``InfoProMemoryHook``, logging every module's peak in
  training (an adapter: it observes the engine's step through the model's
  ``module_callbacks``).

It reaches models only through the engine's contracts (the cut-able
backbone, ``engine/backbone_contract.py``, and the task protocol,
``engine/task_protocol.py``): a new task or backbone family needs no edit
here.
"""
from .hook import InfoProMemoryHook
from .planning import (lowest_peak, minmax_partition, minsum_partition,
                       pareto_front, plan_cuts, plan_for_budget)
from .profile import MemoryProfile, Plan
from .profile_measure import measure_profile
from .building import fake_mode, prepare_step
from .tracking import (count_step_flops, GiB, measure_schedule,
                       measure_step_memory, MiB, PeakTracker, time_steps)

__all__ = [
    'PeakTracker', 'measure_step_memory', 'count_step_flops', 'time_steps',
    'fake_mode', 'prepare_step', 'measure_schedule', 'MiB', 'GiB',
    'MemoryProfile', 'Plan', 'measure_profile', 'minmax_partition',
    'minsum_partition', 'plan_cuts', 'plan_for_budget', 'pareto_front',
    'lowest_peak', 'InfoProMemoryHook'
]
