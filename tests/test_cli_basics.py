"""The command line itself: defaults in --help, -q/-v after the command, a fast --version."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import re
import subprocess
import sys
import typing

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


@pytest.mark.parametrize("command", ["finetune", "ensemble"])
def test_training_help_imports_no_torch(command) -> None:
    """``finetune --help`` took seconds loading torch for the options' defaults; they are read
    from the config classes' source now (timed in the commit that made it so, not here)."""
    code = (
        "import sys\nfrom pretroost.cli import main\n"
        f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'sklearn', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "ref", ["pretroost.train:TrainConfig", "pretroost.finetune:FinetuneConfig",
            "pretroost.models.roost:RoostConfig"],
)  # fmt: skip
def test_config_read_from_source_equals_the_class(ref) -> None:
    """What --help declares from the source is what the imported class says."""
    from pretroost.cli.config_options import static_config

    module, _, name = ref.partition(":")
    cls = getattr(importlib.import_module(module), name)
    static = static_config(ref)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert static.fields == tuple(fields) and static.doc == cls.__doc__
    hints = typing.get_type_hints(cls)
    assert all(static.hints[k] == hints[k] for k in static.hints)
    for field, value in static.defaults.items():
        assert fields[field].default == value, field
    # the fields left without a literal default or a hint are none of the options'
    from pretroost.cli.common import FINETUNE_FIELDS, TRAIN_FIELDS

    options = {*TRAIN_FIELDS, *FINETUNE_FIELDS, "encoder_lr_scale", "freeze_encoder_epochs",
               "elem_embedding"} & set(fields)  # fmt: skip
    assert options <= static.defaults.keys() & static.hints.keys()


def test_finetune_defaults_are_the_train_defaults_and_the_recipe() -> None:
    """--help's optimisation defaults: TrainConfig's, with the recipe's fields set by --recipe."""
    from pretroost.finetune import FinetuneConfig
    from pretroost.recipes import Recipe
    from pretroost.train import TrainConfig

    default = FinetuneConfig().train
    for field in dataclasses.fields(TrainConfig):
        if field.name not in Recipe.TRAIN_FIELDS:
            assert getattr(default, field.name) == getattr(TrainConfig(), field.name), field.name
