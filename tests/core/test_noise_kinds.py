"""A noise kind is declared once (noise/kinds.py); the parser, its bounds, the CLI help, the app's
lists and the ops table follow from that declaration alone."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from denoiser.core.config import NOISE_PRESETS, NoiseConfig
from denoiser.core.noise.kinds import KINDS, NoiseKind, Param
from denoiser.core.noise.ops import op_function, synthesize
from denoiser.core.noise.spec import (
    NOISE_KINDS,
    format_spec,
    noise_help,
    parse_noise_spec,
    parse_spec,
)

REPO = Path(__file__).resolve().parents[2]
# main just before the kinds were declared in one place: its parser and ops are the reference
# that specs, help and noise must still match bit for bit.
LEGACY_REV = "1cdf399"


def _value(v: float) -> str:
    return f"{v:g}"


def _at_bounds(kind: NoiseKind, named: bool) -> str:
    """A spec giving every parameter its full bounds as the range, named or positional."""
    args = [f"{_value(p.bounds[0])}-{_value(p.bounds[1])}" for p in kind.params]
    if named:
        args = [f"{p.name}={a}" for p, a in zip(kind.params, args)]
    return f"{kind.name}:{','.join(args)}"


def _round_trips(spec: str) -> str:
    canonical = parse_noise_spec(spec).spec
    assert parse_spec(canonical) == parse_spec(spec)
    assert format_spec(parse_spec(canonical)) == canonical
    return canonical


@pytest.mark.parametrize("name", list(KINDS))
def test_every_declared_kind_round_trips_with_its_defaults_and_at_its_bounds(name):
    kind = KINDS[name]
    model = parse_spec(_round_trips(name))
    (op,) = model.chains[0]
    assert op.kind == name and [getattr(op, p.name) for p in kind.params] == [p.default for p in kind.params]
    for named in (False, True):
        (op,) = parse_spec(_round_trips(_at_bounds(kind, named))).chains[0]
        assert [getattr(op, p.name) for p in kind.params] == [p.bounds for p in kind.params]
    canonical = _round_trips(name)
    assert _round_trips(f"{name}@2|{name}+{name}") == f"{canonical}@2|{canonical}+{canonical}@1"


@pytest.mark.parametrize("name", list(KINDS))
def test_bounds_come_from_the_declaration(name, monkeypatch):
    kind = KINDS[name]
    for i, p in enumerate(kind.params):
        lo, hi = p.bounds
        for bad in [hi + 1, *([lo / 2] if lo > 0 else [])]:
            with pytest.raises(ValueError, match=f"{name} {p.name} must lie in"):
                parse_spec(f"{name}:{p.name}={bad:g}")
        if p.whole:
            with pytest.raises(ValueError, match="whole numbers"):
                parse_spec(f"{name}:{p.name}={lo + 0.5:g}")
        # Narrow this parameter's bounds in the declaration: its old upper bound is refused now.
        narrowed = Param(p.name, p.metavar, (lo, lo), (lo, lo), p.meaning, p.whole)
        params = kind.params[:i] + (narrowed,) + kind.params[i + 1:]
        monkeypatch.setitem(KINDS, name, NoiseKind(name, params, kind.help, kind.op))
        parse_spec.cache_clear()
        with pytest.raises(ValueError, match=f"{name} {p.name} must lie in"):
            parse_spec(f"{name}:{p.name}={hi:g}")
        monkeypatch.setitem(KINDS, name, kind)
    parse_spec.cache_clear()


def _cli_help(command: str, capsys) -> str:
    from denoiser.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return capsys.readouterr().out


def test_every_declared_kind_and_preset_is_in_the_cli_help(capsys):
    for command in ("train", "synth"):
        text = _cli_help(command, capsys)
        for name in [*KINDS, *NOISE_PRESETS]:
            assert f"\n  {name}" in text, (command, name)
        assert noise_help() in text.replace(" \n", "\n")
    assert list(NOISE_KINDS) == [*KINDS, *NOISE_PRESETS]
    for name, kind in KINDS.items():
        assert kind.help in NOISE_KINDS[name] and all(p.metavar in NOISE_KINDS[name] for p in kind.params)


def _tint(x: torch.Tensor, op, gen: torch.Generator) -> torch.Tensor:
    """A toy kind for the test below: adds a level (0-255 scale) drawn per sample."""
    lo, hi = op.level
    level = lo + (hi - lo) * torch.rand(x.shape[0], generator=gen, device=x.device)
    return x + (level / 255).view(-1, 1, 1, 1).to(x.dtype)


@pytest.fixture
def tint_kind(monkeypatch):
    """A kind declared the way kinds.py declares its own, and nowhere else."""
    kind = NoiseKind("tint", (Param("level", "L", (0.0, 10.0), (0, 20), "value added to every pixel"),),
                     "a constant added to the whole image", f"{__name__}:_tint")
    monkeypatch.setitem(KINDS, "tint", kind)
    parse_spec.cache_clear()  # parsed specs are cached; forget any made without the new kind
    yield kind
    parse_spec.cache_clear()


def test_a_kind_declared_in_kinds_alone_parses_synthesizes_and_is_listed(tint_kind, capsys):
    assert _round_trips("tint") == "tint:0-10" and _round_trips("TINT:level=3") == "tint:3"
    with pytest.raises(ValueError, match="tint level must lie in"):
        parse_spec("tint:21")
    assert op_function("tint") is _tint

    clean = torch.rand(4, 3, 8, 8)
    cfg = NoiseConfig(spec="gaussian:5+tint:2-8|tint", quantize_prob=0.0)
    a = synthesize(clean, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(a, synthesize(clean, cfg, torch.Generator().manual_seed(1)))
    tinted = synthesize(clean, NoiseConfig(spec="tint:6", quantize_prob=0.0), torch.Generator().manual_seed(0))
    assert torch.allclose(tinted - clean, torch.full_like(clean, 6 / 255))

    assert "tint" in NOISE_KINDS and tint_kind.help in noise_help()
    assert f"\n  {NOISE_KINDS['tint']}" in _cli_help("train", capsys)


def test_the_apps_lists_of_kinds_include_a_kind_declared_in_kinds_alone(tint_kind, tiny_checkpoint, tmp_path):
    from denoiser.app.page import build_ui

    demo = build_ui(tiny_checkpoint, runs_dir=tmp_path / "runs", data_root=tmp_path)
    by_id = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    choices = [c[1] if isinstance(c, tuple) else c for c in by_id["noise-kind"].choices]
    assert choices == [*KINDS, *NOISE_PRESETS]
    texts = [b.info for b in demo.blocks.values() if "kinds:" in str(getattr(b, "info", ""))]
    assert texts and all(name in texts[0] for name in [*KINDS, *NOISE_PRESETS])


def _legacy_noise(tmp_path: Path):
    """spec, ops and camera as LEGACY_REV had them, importable side by side with today's."""
    files = {"config": "denoiser/core/config.py", "spec": "denoiser/core/noise/spec.py",
             "ops": "denoiser/core/noise/ops.py", "camera": "denoiser/core/noise/camera.py"}
    package = tmp_path / "legacy_noise"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, path in files.items():
        shown = subprocess.run(["git", "-C", str(REPO), "show", f"{LEGACY_REV}:{path}"], capture_output=True, text=True)
        if shown.returncode:
            pytest.skip(f"no git history with {LEGACY_REV} here: {shown.stderr.strip()}")
        text = shown.stdout.replace("denoiser.core.noise.", "legacy_noise.")
        (package / f"{name}.py").write_text(text.replace("denoiser.core.config", "legacy_noise.config"))
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module("legacy_noise.config"), importlib.import_module("legacy_noise.ops")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == "legacy_noise"]:
            del sys.modules[name]


def _stored_specs() -> list[str]:
    """The noise specs the committed checkpoints were trained with, as their metadata has them."""
    from denoiser.core.checkpoint import read_metadata

    paths = sorted((REPO / "checkpoints").rglob("*.safetensors"))
    specs = {read_metadata(p)["run"]["noise"]["spec"] for p in paths}
    assert specs, "no committed checkpoints"
    return sorted(specs)


def test_specs_help_and_noise_match_the_code_before_the_kinds_were_declared_once(tmp_path):
    old_config, old_ops = _legacy_noise(tmp_path)
    assert old_ops.noise_help() == noise_help()
    specs = _stored_specs() + [*KINDS, *NOISE_PRESETS] + [_at_bounds(k, named=True) for k in KINDS.values()]
    for spec in specs:
        canonical = format_spec(parse_spec(spec))  # the stored spec, parsed and re-rendered today
        assert old_ops.format_spec(old_ops.parse_spec(spec)) == canonical, spec
        for channels, size in ((3, 24), (1, 18)):
            clean = torch.rand(5, channels, size, size, generator=torch.Generator().manual_seed(size))
            old = old_ops.synthesize(clean, old_config.NoiseConfig(spec=spec), torch.Generator().manual_seed(9))
            new = synthesize(clean, NoiseConfig(spec=canonical), torch.Generator().manual_seed(9))
            assert torch.equal(old, new), (spec, channels)
