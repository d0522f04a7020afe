"""The command line itself: defaults in --help, -q/-v after the command, a fast --version."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import subprocess
import sys

import pytest

from pretroost.cli import build_parser, main

COMMANDS = ["data", "finetune", "corpus", "pretrain", "bench", "select", "report", "predict", "embed",
            "ensemble"]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_every_options_default(command, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    sub = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    for action in sub._actions:
        if not action.option_strings or action.default is argparse.SUPPRESS:
            continue
        flag = action.option_strings[-1]
        block = re.search(rf"^  .*{re.escape(flag)}\b.*?(?=^  -|\Z)", text, re.M | re.S)
        assert block and "default" in block.group(0).lower(), (flag, block and block.group(0))


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["-q", "predict", "--model", "M", "IN"], logging.WARNING),
        (["predict", "--model", "M", "IN", "-q"], logging.WARNING),
        (["predict", "-v", "--model", "M", "IN"], logging.DEBUG),
        (["predict", "--model", "M", "IN"], logging.INFO),
    ],
)
def test_quiet_and_verbose_work_before_and_after_the_command(argv, level, tmp_path) -> None:
    argv = [str(tmp_path / a) if a in ("M", "IN") else a for a in argv]
    assert main(argv) == 1  # no such model: only the log level matters here
    assert logging.getLogger("pretroost").level == level


def test_version_is_fast_and_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom pretroost.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines() == ["pretroost " + _version(), "False"]


def test_python_dash_m_pretroost_runs_the_command_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pretroost", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "pretroost " + _version()


def _version() -> str:
    from pretroost.cli import _version as v

    return v()


@pytest.mark.parametrize("command", ["finetune", "ensemble", "pretrain", "fit", "trees"])
def test_training_help_imports_no_torch(command) -> None:
    """``finetune --help`` took seconds loading torch for the options' defaults; the config
    classes live in the torch-free pretroost.configs now (timed in the commit that made it so,
    not here)."""
    code = (
        "import sys\nfrom pretroost.cli import main\n"
        f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'sklearn', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_finetune_defaults_are_the_train_defaults_and_the_recipe() -> None:
    """--help's optimisation defaults: TrainConfig's, with the recipe's fields set by --recipe."""
    from pretroost.finetune import FinetuneConfig
    from pretroost.recipes import Recipe
    from pretroost.train import TrainConfig

    default = FinetuneConfig().train
    for field in dataclasses.fields(TrainConfig):
        if field.name not in Recipe.TRAIN_FIELDS:
            assert getattr(default, field.name) == getattr(TrainConfig(), field.name), field.name
