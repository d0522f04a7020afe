"""``python -m pretroost``: the command line, for environments without the ``pretroost`` script."""

from pretroost.cli import entrypoint

if __name__ == "__main__":
    entrypoint()
