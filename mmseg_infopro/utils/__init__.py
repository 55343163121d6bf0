"""Utilities: synthetic data, memory measurement, split planning."""
from .memory import PeakTracker, measure_step_memory, time_steps
from .memory_profile import MemoryProfile, Plan, measure_profile
from .split_planning import (minmax_partition, minsum_partition,
                             pareto_front, plan_cuts, plan_for_budget)
from .synthetic_cityscapes import make_synthetic_cityscapes

__all__ = [
    'make_synthetic_cityscapes', 'PeakTracker', 'measure_step_memory',
    'time_steps', 'MemoryProfile', 'Plan', 'measure_profile',
    'minmax_partition', 'minsum_partition', 'plan_cuts', 'plan_for_budget',
    'pareto_front'
]
