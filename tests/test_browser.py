"""A real browser on the real page: headless Debian Chromium driven by Playwright.

It uploads an image and denoises it, runs a batch with a bad file in it, trains a small model
until its curves and preview show, hands that model to the Denoise tab, and checks the page
asked nothing of the internet. Screenshots of each tab go to $DENOISER_SCREENSHOTS (the
README's come from `DENOISER_SCREENSHOTS=docs/screenshots python -m pytest tests/test_browser.py`),
else to the test's tmp folder. With $DENOISER_SCREENSHOTS set, the page runs the shipped model
when it is there, so the pictures show what users get; otherwise the tiny test model.

Setup: Chromium comes from apt (`apt-get install -y chromium`, done here when missing and we
are root); Playwright is the Python package from the dev extra, driving that binary (its own
browser download, `playwright install`, is not used).
"""

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import DATA

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 240_000  # what may take long on a loaded 2-core CI machine: model export, training
STEP_TIMEOUT_MS = 60_000  # anything else

pytestmark = pytest.mark.slow


def ensure_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip(f"needs Debian's chromium at {CHROMIUM}: run `apt-get install -y chromium` as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser():
    executable = ensure_chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (dev extra)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page_url(tiny_checkpoint, tmp_path_factory):
    from denoiser.inference import DEFAULT_MODEL
    from denoiser.ui import build_ui, launch_options

    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio"))
    model = DEFAULT_MODEL if os.environ.get("DENOISER_SCREENSHOTS") and DEFAULT_MODEL.exists() else tiny_checkpoint
    root = tmp_path_factory.mktemp("data-root")
    demo = build_ui(model, runs_dir=tmp_path_factory.mktemp("runs"), data_root=root)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("DENOISER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_denoise_batch_and_train_in_a_real_browser(browser, page_url, shots, tmp_path):
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(STEP_TIMEOUT_MS)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(page_url)

    # Denoise: upload a clean image, add noise to it, denoise; the output, timing, PSNR against
    # the clean image, comparison, 100 % region and download appear.
    page.locator("#input-image input[type=file]").set_input_files(str(DATA / "astronaut.png"))
    expect(page.locator("#model-info")).to_contain_text("runs on", timeout=TIMEOUT_MS)
    page.get_by_text("add noise first").click()
    page.click("#add-noise-button")
    expect(page.locator("#input-image img")).to_have_attribute("src", re.compile(r"astronaut_noisy\.png$"))
    page.click("#denoise-button")
    expect(page.locator("#output-image img")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#run-info")).to_contain_text("denoised in")
    expect(page.locator("#run-info")).to_contain_text(re.compile(r"gaussian:25\): [\d.]+ dB noisy, [\d.]+ dB denoised"))
    download = page.locator("#download a").first
    expect(download).to_have_attribute("href", re.compile(r"astronaut_noisy_denoised\.png$"))
    expect(page.locator("#compare img").first).to_be_visible()
    region = page.locator("#region img").first
    expect(region).to_be_visible()
    fit, scale = region.evaluate("""img => [getComputedStyle(img).objectFit,
        Math.min(img.clientWidth / img.naturalWidth, img.clientHeight / img.naturalHeight)]""")
    assert fit in ("contain", "scale-down") and scale == 1, f"region shown at {scale:.0%}, not 100 % ({fit})"
    before = region.get_attribute("src")
    result_img = page.locator("#output-image img")
    box = result_img.bounding_box()  # the picture sits centred in this box: click inside the picture
    result_img.click(position={"x": box["width"] / 2 - 40, "y": box["height"] / 2 - 40})
    expect(region).not_to_have_attribute("src", before)
    page.screenshot(path=str(shots / "denoise.png"), full_page=True)

    # Batch: two images and a broken one; the table lists all three, the failure included.
    page.get_by_role("tab", name="Batch").click()
    (tmp_path / "broken.png").write_text("not an image")
    page.locator("#batch-files input[type=file]").set_input_files(
        [str(DATA / "noisy_astronaut.png"), str(DATA / "camera.png"), str(tmp_path / "broken.png")])
    expect(page.locator("#batch-files tr")).to_have_count(3)
    page.click("#batch-button")
    expect(page.locator("#batch-summary")).to_contain_text("2 denoised, 1 failed", timeout=TIMEOUT_MS)
    expect(page.locator("#batch-table")).to_contain_text("not a readable image")
    expect(page.locator("#batch-zip a").first).to_have_attribute("href", re.compile(r"denoised\.zip$"))
    page.screenshot(path=str(shots / "batch.png"), full_page=True)

    # Train: a short run on procedural images; curves and a preview appear; then hand it over.
    page.get_by_role("tab", name="Train").click()
    for label, value in {"Steps": "60", "Batch size": "4", "Crop (px)": "32", "Validate every N steps": "10",
                         "Snapshot every N steps": "30"}.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_text("More options").click()
    for label, value in {"Log every N steps": "2", "Validation crops": "4", "Warm-up steps": "5"}.items():
        page.get_by_label(label, exact=True).fill(value)
    page.click("#train-start")
    expect(page.locator("#train-status")).to_contain_text("finished", timeout=TIMEOUT_MS)
    expect(page.locator("#train-preview img")).to_be_visible()
    expect(page.locator("#loss-plot canvas, #loss-plot svg").first).to_be_visible()
    expect(page.locator("#psnr-plot canvas, #psnr-plot svg").first).to_be_visible()
    page.wait_for_timeout(1500)  # let the plots finish drawing before the picture is taken
    page.screenshot(path=str(shots / "train.png"), full_page=True)
    page.click("#train-export")
    expect(page.locator("#train-export-file a").first).to_have_attribute("href", re.compile(r"model\.onnx$"),
                                                                       timeout=TIMEOUT_MS)
    page.click("#train-use")
    expect(page.get_by_role("tab", name="Denoise")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#model-picker input")).to_have_value(
        re.compile(r"ui-\d{8}-\d{6}.*model\.safetensors"))
    # Wait for the new model to load: a test that ends mid-export would abort the interpreter.
    expect(page.locator("#model-info")).to_contain_text(re.compile(r"ui-\d{8}-\d{6}/model\.safetensors.*runs on"),
                                                        timeout=TIMEOUT_MS)

    hosts = {urlparse(u).hostname for u in requested if urlparse(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {"127.0.0.1"}, f"the page reached out to {hosts - {'127.0.0.1'}}"
    page.close()
