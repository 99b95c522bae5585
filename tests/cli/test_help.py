"""`denoiser --help` and every subcommand's: they run, list each flag the parser has, and take
their choice lists from the declarations those values belong to (no literal lists in the CLI)."""

import argparse
import re

import pytest
import torch

from denoiser.bench import modes as bench_modes
from denoiser.bench import peers as bench_peers
from denoiser.bench import speed as bench_speed
from denoiser.cli.main import build_parser
from denoiser.core import config
from denoiser.core.imageio import EXTENSION_BY_FORMAT, FORMAT_BY_EXTENSION
from denoiser.deploy.backends import BACKEND_CHOICES
from denoiser.run.quality import QUALITIES


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_every_subcommand(capsys):
    text = _help(["--help"], capsys)
    commands = _subparsers(build_parser())
    assert len(commands) == 7
    for name, sub in commands.items():
        assert re.search(rf"\n    {name}\s", text), name
        assert sub.prog == f"denoiser {name}"


@pytest.mark.parametrize("command", sorted(_subparsers(build_parser())))
def test_each_subcommand_help_runs_and_lists_its_flags(command, capsys):
    text = _help([command, "--help"], capsys)
    assert text.startswith(f"usage: denoiser {command} ")
    actions = [a for a in _subparsers(build_parser())[command]._actions if a.help != argparse.SUPPRESS]
    assert len(actions) > 1  # more than --help itself
    for action in actions:
        if action.option_strings:
            for flag in action.option_strings:
                assert f"  {flag}" in text or f", {flag}" in text, flag
        else:  # a positional: by its metavar
            assert f"  {action.metavar or action.dest}" in text, action.dest


def _choice_actions() -> dict[tuple[str, str], argparse.Action]:
    return {(name, a.dest): a for name, sub in _subparsers(build_parser()).items() for a in sub._actions
            if a.choices is not None}


# Every `choices` in the CLI, and the declaration it must equal
CHOICE_SOURCES = {
    ("denoise", "backend"): BACKEND_CHOICES,
    ("eval", "backend"): BACKEND_CHOICES,
    ("denoise", "format"): [ext.lstrip(".") for ext in EXTENSION_BY_FORMAT.values()],
    ("train", "solver"): config.SOLVERS,
    ("train", "schedule"): config.SCHEDULES,
    ("train", "loss"): config.LOSSES,
    ("train", "amp"): config.AMP_MODES,
    ("export", "precision"): config.PRECISIONS,
    ("export", "target"): list(config.INT8_TARGETS),
    ("export", "weight_bits"): config.INT8_WEIGHT_BITS,
    ("export", "calib_method"): config.CALIBRATION_METHODS,
    ("synth", "channels"): (0, *config.CHANNELS),  # 0: each file's own
}


def test_every_choice_list_equals_its_declaration():
    actions = _choice_actions()
    assert set(actions) == set(CHOICE_SOURCES)  # a new list in the CLI needs its source named here
    for key, action in actions.items():
        assert list(action.choices) == list(CHOICE_SOURCES[key]), key


def test_quality_modes_and_bench_defaults_come_from_their_declarations():
    subs = _subparsers(build_parser())
    for command in ("denoise", "eval"):
        quality = next(a for a in subs[command]._actions if a.dest == "quality")
        assert quality.metavar == "{" + ",".join(QUALITIES) + "}"
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--quality", "fastest", "x"])
    defaults = {a.dest: a.default for a in subs["bench"]._actions}
    assert defaults["modes"] == list(QUALITIES) == list(bench_modes.MODES)
    assert defaults["peers"] == list(bench_modes.PEER_ROWS)
    assert set(bench_modes.PEER_ROWS) <= set(bench_modes.PEER_NAMES)
    assert {n.partition("-")[0] for n in bench_modes.PEER_NAMES} == set(bench_peers.PEERS)
    assert defaults["backends"] == [b for b in BACKEND_CHOICES if b != "auto"]
    assert defaults["precisions"] == list(config.PRECISIONS)
    assert bench_speed.DEFAULT_SIZES == bench_speed.SIZES[:2]


def test_each_declared_value_is_one_the_code_acts_on():
    """The declarations are not just names: every solver, schedule and loss runs, every output
    format is one the image writer knows, and the defaults are among the choices."""
    from denoiser.core.metrics import LOSSES, training_loss
    from denoiser.deploy import lower
    from denoiser.train.optim import lr_at, make_optimizer

    params = [torch.nn.Parameter(torch.zeros(2))]
    for solver in config.SOLVERS:
        assert isinstance(make_optimizer(params, config.TrainConfig(solver=solver)), torch.optim.Optimizer)
    for schedule in config.SCHEDULES:
        assert 0 < lr_at(50, config.TrainConfig(schedule=schedule), 100) <= config.TrainConfig.lr
    assert tuple(LOSSES) == config.LOSSES
    x, y = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    for loss in config.LOSSES:
        assert training_loss(loss, 0.0, x, y) > 0
    assert lower.INT8_TARGETS is config.INT8_TARGETS
    assert lower.CALIBRATION_METHODS is config.CALIBRATION_METHODS
    for ext in CHOICE_SOURCES[("denoise", "format")]:
        assert FORMAT_BY_EXTENSION["." + ext] in EXTENSION_BY_FORMAT
    t, e = config.TrainConfig(), config.ExportConfig()
    assert t.solver in config.SOLVERS and t.schedule in config.SCHEDULES and t.loss in config.LOSSES
    assert t.amp in config.AMP_MODES and e.precision in config.PRECISIONS and e.int8_target in config.INT8_TARGETS
    assert e.int8_weight_bits in config.INT8_WEIGHT_BITS and e.calib_method in config.CALIBRATION_METHODS
