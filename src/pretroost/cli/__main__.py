"""``python -m pretroost.cli`` (e.g. under torchrun)."""

from pretroost.cli import entrypoint

if __name__ == "__main__":
    entrypoint()
