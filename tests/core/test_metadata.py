"""The typed metadata records give back exactly the JSON they read, and say which file and
field is wrong when one is."""

import dataclasses
import json
from dataclasses import replace

import onnx
import pytest
from conftest import REPO
from safetensors import safe_open
from safetensors.torch import save_file

from denoiser.core.atomic import file_sha256
from denoiser.core.checkpoint import (
    load_model,
    read_checkpoint_meta,
    read_metadata,
    save_checkpoint,
)
from denoiser.core.config import EngineProfile, ModelConfig
from denoiser.core.metadata import (
    CheckpointMeta,
    EngineSidecar,
    ExportMeta,
    ExportSidecar,
    MetadataError,
    read_sidecar,
    sidecar_path,
)
from denoiser.core.nets.unet import UNet

SHIPPED = sorted((REPO / "checkpoints").rglob("*.safetensors"))


def raw_header(path) -> str:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()["denoiser"]


def onnx_prop(path) -> str:
    return next(p.value for p in onnx.load(str(path)).metadata_props if p.key == "denoiser")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_checkpoint_header_round_trips_byte_for_byte(path):
    raw = raw_header(path)
    meta = read_checkpoint_meta(path)
    assert json.dumps(meta.to_dict()) == raw and read_metadata(path) == json.loads(raw)
    # a trained model or a packed leg of one (checkpoints/wip): it ran steps and names its run
    assert meta.format == "denoiser-checkpoint-v1" and meta.step > 0 and meta.extra == {}
    # written before `arch` existed, or after: the config reads the same either way
    assert meta.model_config().channels == meta.run["model"]["channels"] in (1, 3)


def test_shipped_checkpoints_are_all_checked():
    assert {p.name for p in SHIPPED} >= {"default-color.safetensors", "default-gray.safetensors",
                                         "v1-color.safetensors", "v1-gray.safetensors"}


def test_trained_checkpoints_round_trip_and_their_fields_are_typed(tiny_checkpoint):
    """A final model, its best model and its resumable snapshot (param_groups), as the trainer writes them."""
    written = sorted(tiny_checkpoint.parent.glob("*.safetensors"))
    assert {p.name for p in written} >= {"model.safetensors", "last.safetensors"}
    for path in written:
        meta = read_checkpoint_meta(path)
        assert json.dumps(meta.to_dict()) == raw_header(path), path
        assert isinstance(meta.step, int) and isinstance(meta.elapsed_s, float) and meta.run["model"]["width"] == 8
    snapshot = read_checkpoint_meta(tiny_checkpoint.parent / "last.safetensors")
    assert isinstance(snapshot.param_groups, list) and "param_groups" not in snapshot.carried()
    model, meta = load_model(tiny_checkpoint)
    assert model.cfg == meta.model_config() and meta.world_size == 1 and isinstance(meta.metrics, dict)


def test_unknown_keys_are_kept_in_order_and_a_resave_carries_them(tmp_path):
    model = UNet(ModelConfig(channels=1, width=4, levels=1))
    path = save_checkpoint(tmp_path / "a.safetensors", model, step=3, revived={"inc": 2}, elapsed_s=5, note="x")
    meta = read_checkpoint_meta(path)
    assert meta.extra == {"revived": {"inc": 2}, "note": "x"}
    assert list(meta.to_dict()) == ["format", "code_version", "model", "step", "revived", "elapsed_s", "note"]
    assert meta.elapsed_s == 5 and json.dumps(meta.to_dict()) == raw_header(path)  # an int stays an int
    again = save_checkpoint(tmp_path / "b.safetensors", model, **meta.carried())
    assert raw_header(again) == raw_header(path)


@pytest.mark.parametrize("field, value, message", [
    ("step", "7", "(TypeError: 'step' should be int, is str '7')"),
    ("elapsed_s", True, "(TypeError: 'elapsed_s' should be float, is bool True)"),
    ("metrics", [1], "(TypeError: 'metrics' should be dict, is list [1])"),
])
def test_a_wrong_typed_checkpoint_field_is_refused_naming_the_file(tmp_path, field, value, message):
    model = UNet(ModelConfig(channels=1, width=4, levels=1))
    good = save_checkpoint(tmp_path / "good.safetensors", model)
    header = {**json.loads(raw_header(good)), field: value}
    with safe_open(str(good), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={"denoiser": json.dumps(header)})
    with pytest.raises(ValueError, match="bad.safetensors: damaged denoiser metadata") as err:
        read_metadata(bad)
    assert message in str(err.value)
    with pytest.raises(MetadataError, match="new.safetensors") as err:  # nor can one be written
        save_checkpoint(tmp_path / "new.safetensors", model, **{field: value})
    assert message in str(err.value) and not (tmp_path / "new.safetensors").exists()


def test_a_fresh_onnx_export_and_its_sidecar_round_trip(tiny_checkpoint, tiny_onnx):
    raw = onnx_prop(tiny_onnx)
    meta = ExportMeta.from_dict(json.loads(raw), tiny_onnx)
    assert json.dumps(meta.to_dict()) == raw
    assert meta.precision == "fp32" and meta.model_config().width == 8 and meta.int8_target is None
    side = read_sidecar(tiny_onnx)
    assert json.dumps(side.to_dict(), indent=2) == sidecar_path(tiny_onnx).read_text()
    assert side.passed and side.check.size == [37, 53] and side.quality.passed
    assert side.source.sha256 == file_sha256(tiny_checkpoint) and side.sha256 == file_sha256(tiny_onnx)
    assert side.extra == {}  # every key the exporter writes has a field


def test_a_lowered_export_round_trips_with_its_mixed_precision_fields(tiny_checkpoint, tiny_onnx, tmp_path):
    from denoiser.core.config import ExportConfig
    from denoiser.deploy.export import export_onnx, read_export_meta

    model, _ = load_model(tiny_checkpoint)
    out = tmp_path / "fp16.onnx"
    export_onnx(model, out, ExportConfig(precision="fp16"), source={"checkpoint": "x"}, from_fp32=tiny_onnx)
    meta = read_export_meta(out)
    assert json.dumps(meta.to_dict()) == onnx_prop(out)
    assert meta.precision == "fp16" and meta.float_precision == "fp32" and isinstance(meta.float_layers, list)
    side = read_sidecar(out)
    assert json.dumps(side.to_dict(), indent=2) == sidecar_path(out).read_text()
    assert side.source.checkpoint == "x" and side.source.sha256 is None and "sha256" not in side.source.to_dict()


def test_a_field_set_later_goes_last_as_a_dict_update_would_put_it(tiny_onnx):
    """run/quality.py records the measured reach of an INT8 export this way."""
    side = read_sidecar(tiny_onnx)
    updated = replace(side, reach=8).to_dict()
    assert updated == {**json.loads(sidecar_path(tiny_onnx).read_text()), "reach": 8}
    assert list(updated)[-1] == "reach"


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("alignment"), "(KeyError: 'alignment')"),
    (lambda d: d["check"].pop("passed"), "(KeyError: 'check.passed')"),
    (lambda d: d.update(source="a.safetensors"), "(TypeError: 'source' should be dict, is str 'a.safetensors')"),
    (lambda d: d["quality"].update(loss_db="0.1"), "(TypeError: 'quality.loss_db' should be float, is str '0.1')"),
])
def test_a_damaged_sidecar_is_refused_naming_the_file_and_field(tiny_onnx, tmp_path, change, message):
    data = json.loads(sidecar_path(tiny_onnx).read_text())
    change(data)
    sidecar_path(tmp_path / "m.onnx").write_text(json.dumps(data))
    with pytest.raises(MetadataError, match="m.onnx.json: damaged denoiser metadata") as err:
        read_sidecar(tmp_path / "m.onnx")
    assert message in str(err.value)


def test_engine_sidecars_round_trip_and_give_the_rebuild_command(tiny_onnx, tmp_path):
    """Laid out as tensorrt.build_engine writes one (building needs TensorRT and a GPU)."""
    from denoiser.deploy.tensorrt import (
        read_engine_meta,
        read_engine_sidecar,
        rebuild_command,
    )

    onnx_side = read_sidecar(tiny_onnx).to_dict()
    profile = EngineProfile(max_batch=2, opt_hw=(64, 64), max_hw=(128, 128))
    written = {"format": "denoiser-engine-v1", "file": "m.engine", "bytes": 1234, "flavour": "tensorrt-rtx",
               "tensorrt_version": "1.2.0", "precision": onnx_side["precision"],
               "profile": json.loads(json.dumps(dataclasses.asdict(profile))), "channels": 3, "workspace_mb": 256,
               "compute_capabilities": ["SM86", "SM120"], "onnx": {"file": tiny_onnx.name, "sha256": "ab"},
               "build_seconds": 1.5, "gpu": None,
               **{k: onnx_side[k] for k in ("model", "alignment", "receptive_field", "activation_bytes_per_pixel",
                                            "source")}}
    engine = tmp_path / "m.engine"
    sidecar_path(engine).write_text(json.dumps(written, indent=2))
    side = read_engine_meta(engine)
    assert json.dumps(side.to_dict(), indent=2) == sidecar_path(engine).read_text() and side.extra == {}
    assert read_engine_sidecar(engine) == written and side.engine_profile() == profile
    command = rebuild_command(engine, side)
    assert command == rebuild_command(engine, written)  # the dict form, as TensorRTRunner.meta holds it
    assert (f"denoiser export {onnx_side['source']['checkpoint']} --precision fp32 -o {tmp_path / tiny_onnx.name} "
            f"--engine {engine} --min-hw 16x16 --opt-hw 64x64 --max-hw 128x128 --min-batch 1 --opt-batch 1 "
            f"--max-batch 2 --workspace-mb 256 --compute-capabilities SM86,SM120") == command
    sidecar_path(engine).write_text(json.dumps({**written, "bytes": "1234"}))
    with pytest.raises(MetadataError, match=r"m\.engine\.json: damaged .*'bytes' should be int, is str"):
        read_engine_meta(engine)


def test_records_compare_by_value_and_keep_nothing_unread():
    raw = {"format": "denoiser-checkpoint-v1", "model": {"channels": 1}, "future": [1, 2]}
    meta = CheckpointMeta.from_dict(raw, "x")
    assert meta == CheckpointMeta.from_dict(dict(raw), "y") and meta.to_dict() == raw
    assert meta.extra == {"future": [1, 2]} and meta.step is None and meta.code_version is None
    fresh = EngineSidecar(format="denoiser-engine-v1", channels=1)
    assert fresh.to_dict() == {"format": "denoiser-engine-v1", "channels": 1}  # None fields are left out
    assert ExportSidecar.from_dict({"model": {}, "alignment": 1, "receptive_field": 0}).passed is False
    with pytest.raises(MetadataError, match=r"x: damaged denoiser metadata \(not a JSON object\)"):
        ExportMeta.from_dict([1], "x")
