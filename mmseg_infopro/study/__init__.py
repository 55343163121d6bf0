"""Studies that train many runs through ``tools/train.py`` and collect
their results: :mod:`.accuracy` (does local learning keep accuracy: every
variant of a model, the same iterations, several seeds; the face is
``tools/accuracy_study.py``, the specs live in ``configs/study/``)."""
from .accuracy import (StudyError, StudySpec, ensure_data,
                       format_cfg_options, load_spec, markdown_table,
                       plot_study, read_final_metric,
                       rescale_param_schedulers, run_options, run_study,
                       summarize, train_command)

__all__ = [
    'StudyError', 'StudySpec', 'ensure_data', 'format_cfg_options',
    'load_spec', 'markdown_table', 'plot_study', 'read_final_metric',
    'rescale_param_schedulers', 'run_options', 'run_study', 'summarize',
    'train_command'
]
