"""Utilities: synthetic data, memory measurement, split planning."""
from .memory import PeakTracker, measure_step_memory, time_steps
from .split_planning import (MemoryProfile, measure_profile,
                             minmax_partition, plan_cuts)
from .synthetic_cityscapes import make_synthetic_cityscapes

__all__ = [
    'make_synthetic_cityscapes', 'PeakTracker', 'measure_step_memory',
    'time_steps', 'MemoryProfile', 'measure_profile', 'minmax_partition',
    'plan_cuts'
]
