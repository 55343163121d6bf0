"""The weights of a local head's loss terms, checked."""


def check_loss_weight(owner: str, name: str, value) -> float:
    """``value`` as a float, or ValueError naming ``owner.name`` and the
    allowed range (a number >= 0; a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or value < 0:
        raise ValueError(f'{owner}: {name} must be a number >= 0, got '
                         f'{value!r}')
    return float(value)
