"""What a person running `python app.py` reads on the console: the start model being prepared
(a checkpoint's ONNX export happens there, at start-up, not in the first user's request),
where the page is served, and one line per refused upload, never a traceback; no hint to
make a public share link, which this app never does."""

import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import DATA, REPO


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_served(url: str, proc: subprocess.Popen, log, seconds: float = 180) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if proc.poll() is not None:
                pytest.fail(log.read_text())
            time.sleep(0.5)
    pytest.fail(f"app.py did not answer within {seconds} s:\n{log.read_text()}")


def test_console_says_what_happens_in_few_lines_and_exports_at_start(tiny_checkpoint, tmp_path):
    from gradio_client import Client, handle_file

    cache, log, port = tmp_path / "onnx-cache", tmp_path / "console.txt", free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "DENOISER_CACHE": str(cache),
           "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    url = f"http://127.0.0.1:{port}/"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--model", str(tiny_checkpoint), "--port",
                                 str(port), "--runs-dir", str(tmp_path / "runs")],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_served(url, proc, log)
        # Before anyone asked for a denoise, the checkpoint's ONNX exports (FP32, and the INT8 one that
        # auto runs where its check passed) are made and cached: the first denoise makes none.
        exported = sorted(cache.glob("*.onnx"))
        assert exported
        client = Client(url, verbose=False)
        bad = tmp_path / "notes.png"
        bad.write_text("this is not an image")
        with pytest.raises(Exception, match="Cannot use this file: not a readable image"):
            client.predict(handle_file(str(bad)), 1.0, api_name="/denoise")
        client.predict(handle_file(str(DATA / "noisy_astronaut.png")), 1.0, api_name="/denoise")
        assert sorted(cache.glob("*.onnx")) == exported
    finally:
        proc.terminate()
        proc.wait(10)
    text = log.read_text()
    assert "Traceback" not in text, text
    assert "share=True" not in text and "public link" not in text, text
    refused = [line for line in text.splitlines() if "notes.png" in line]
    assert len(refused) == 1 and refused[0].startswith("denoiser: refused: Cannot use this file"), text
    assert re.search(r"denoiser: loading model\.safetensors on auto .*ONNX", text), text
    ready, serving = text.find("denoiser: ready in"), text.find(f"denoiser: serving on {url}")
    assert 0 <= ready < serving, text  # prepared before the page takes requests
