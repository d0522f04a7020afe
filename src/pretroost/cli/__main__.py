"""``python -m pretroost.cli`` (e.g. under torchrun)."""

from pretroost.cli import entrypoint

entrypoint()
