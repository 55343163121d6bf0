"""Top-k accuracy of image classification, an mmengine metric."""
from numbers import Integral
from typing import List, Optional, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric

from mmseg.registry import METRICS


def _field(sample, key: str):
    """``sample[key]`` of a dict (what ``Evaluator.process`` hands over)
    or ``sample.key`` of a data element; ``None`` when missing."""
    if isinstance(sample, dict):
        return sample.get(key)
    return getattr(sample, key, None)


@METRICS.register_module()
class ClsAccuracy(BaseMetric):
    """Top-k accuracy in percent.

    ``process`` reads the data samples of ``model.predict``: each holds
    ``pred_score`` (``(num_classes,)`` scores) and ``gt_label`` (an int or
    a 1-element tensor). ``compute_metrics`` returns ``{'top1': float,
    'top5': float, ...}`` (one key per ``k`` of ``topk``), logged by
    mmengine as ``accuracy/top1``, ... (``default_prefix``). A ``k``
    larger than the number of classes is clipped to it (the key keeps
    ``k``).

    Args:
        topk (int | sequence of int): the ``k`` values (each >= 1).
        collect_device, prefix, collect_dir: as mmengine's ``BaseMetric``.
    """

    default_prefix: Optional[str] = 'accuracy'

    def __init__(self,
                 topk: Union[int, Sequence[int]] = (1, 5),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix,
                         collect_dir=collect_dir)
        topk = (topk, ) if isinstance(topk, Integral) else tuple(topk)
        if not topk or not all(
                isinstance(k, Integral) and k >= 1 for k in topk):
            raise ValueError(f'ClsAccuracy: topk must be an int >= 1 or a '
                             f'non-empty sequence of them, got {topk!r}')
        self.topk = tuple(int(k) for k in topk)

    def process(self, data_batch, data_samples: Sequence) -> None:
        for i, sample in enumerate(data_samples):
            score, label = (_field(sample, 'pred_score'),
                            _field(sample, 'gt_label'))
            if score is None or label is None:
                raise KeyError(
                    f'ClsAccuracy: data sample {i} of the batch lacks '
                    f'{"pred_score" if score is None else "gt_label"}; '
                    'expected the samples of model.predict, with '
                    'pred_score (num_classes,) and gt_label.')
            score = torch.as_tensor(score).detach().cpu().reshape(-1)
            label = int(torch.as_tensor(label).reshape(-1)[0])
            self.results.append(dict(pred_score=score, gt_label=label))

    def compute_metrics(self, results: List[dict]) -> dict:
        if not results:
            raise ValueError(
                'ClsAccuracy: no results to evaluate; the dataloader gave '
                'no samples, or process() was never called (is the val/test '
                'dataset empty?).')
        sizes = {r['pred_score'].numel() for r in results}
        if len(sizes) != 1:
            raise ValueError(f'ClsAccuracy: pred_score sizes differ between '
                             f'samples: {sorted(sizes)}')
        scores = torch.stack([r['pred_score'] for r in results]).float()
        labels = torch.tensor([r['gt_label'] for r in results])
        num_classes = scores.shape[1]
        bad = (labels < 0) | (labels >= num_classes)
        if bad.any():
            i = int(bad.nonzero()[0])
            raise ValueError(
                f'ClsAccuracy: gt_label {int(labels[i])} of sample {i} is '
                f'out of range 0..{num_classes - 1} (pred_score has '
                f'{num_classes} classes)')
        metrics = {}
        for k in self.topk:
            top = scores.topk(min(k, num_classes), dim=1).indices
            hit = (top == labels[:, None]).any(dim=1)
            metrics[f'top{k}'] = float(hit.float().mean() * 100.0)
        return metrics
