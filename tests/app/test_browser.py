"""A real browser on the real page: headless Debian Chromium driven by Playwright.

It checks the page reads well (a model name that fits its picker, bold phrases that do not
break, labelled samples beside the upload box, a refused upload that says why instead of a
broken picture, the upload's noise level), denoises an image, runs a batch with a bad file in
it, trains a small model until its curves and preview show (titled, labelled plots that say
what will appear while empty; buttons that wait for a run), hands that model to the Denoise
tab, and checks the page asked nothing of the internet. Screenshots of each tab go to
$DENOISER_SCREENSHOTS (the README's come from
`DENOISER_SCREENSHOTS=docs/screenshots python -m pytest tests/app/test_browser.py`), else to the
test's tmp folder; they are scaled to 75 % (a README shows them narrower anyway) and stored
with 256 colours, so each stays under SHOT_MAX_BYTES. With $DENOISER_SCREENSHOTS set, the page
runs the shipped model when it is there, so the pictures show what users get; otherwise the
tiny test model.

Setup: Chromium comes from apt (`apt-get install -y chromium`, done here when missing and we
are root); Playwright is the Python package from the dev extra, driving that binary (its own
browser download, `playwright install`, is not used).
"""

import io
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
SHOT_MAX_BYTES = 300_000
SHOT_SCALE = 0.75

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
    from denoiser.app.page import (
        build_ui,
        launch_options,
        prepare_start_model,
        start_model,
    )
    from denoiser.run.inference import DEFAULT_MODEL

    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio"))
    model = DEFAULT_MODEL if os.environ.get("DENOISER_SCREENSHOTS") and DEFAULT_MODEL.exists() else tiny_checkpoint
    root = tmp_path_factory.mktemp("data-root")
    demo = build_ui(model, runs_dir=tmp_path_factory.mktemp("runs"), data_root=root)
    prepare_start_model(start_model(model), "auto")  # as app.py does: no request waits for an export
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


def save_screenshot(page, path: Path) -> None:
    """A full-page screenshot, small enough to check in: scaled, then 256 colours without
    dithering (which would paint noise on the denoised pictures). The page's own flat colours
    are kept exactly; the pictures share the rest of the palette."""
    from PIL import Image

    im = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    im = im.resize((round(im.width * SHOT_SCALE), round(im.height * SHOT_SCALE)), Image.Resampling.LANCZOS)
    flat = [c for _, c in sorted(im.getcolors(im.width * im.height), reverse=True)[:64]]
    rest = im.quantize(256 - len(flat), method=Image.Quantize.MEDIANCUT).getpalette()[:3 * (256 - len(flat))]
    palette = Image.new("P", (1, 1))
    palette.putpalette([v for c in flat for v in c] + rest)
    im.quantize(palette=palette, dither=Image.Dither.NONE).save(path, optimize=True)
    assert path.stat().st_size < SHOT_MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes"


def fits(locator) -> bool:
    """The element shows its whole text: nothing scrolled or cut off."""
    return locator.evaluate("el => el.scrollWidth <= el.clientWidth + 1")


def test_denoise_batch_and_train_in_a_real_browser(browser, page_url, shots, tmp_path):
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(STEP_TIMEOUT_MS)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(page_url)

    # The model line and picker read whole: a short name that fits, bold phrases unbroken.
    expect(page.locator("#model-info")).to_contain_text("runs on", timeout=TIMEOUT_MS)
    picker = page.locator("#model-picker input")
    name = picker.input_value()
    assert not name.startswith("/") and ".safetensors" not in name and fits(picker), f"the picker shows {name!r}"
    for phrase in page.locator("#model-info strong").all():
        assert phrase.evaluate("el => el.getClientRects().length") == 1, f"{phrase.inner_text()!r} breaks"

    # The samples sit beside the upload box, each with its whole label.
    upload_box, samples = page.locator("#input-image").bounding_box(), page.locator("#samples").bounding_box()
    gap = samples["x"] - (upload_box["x"] + upload_box["width"])
    assert 0 <= gap < 40 and abs(samples["y"] - upload_box["y"]) < 40, (upload_box, samples)
    captions = page.locator("#samples .caption-label")
    expect(captions).to_have_count(len(list(DATA.glob("*.png"))))
    for caption in captions.all():
        assert caption.is_visible() and fits(caption), caption.inner_text()
    expect(captions.filter(has_text="Noisy astronaut")).to_have_count(1)

    # A file that is not an image: its message where the picture would be, no broken picture.
    (tmp_path / "broken.png").write_text("not an image")
    page.locator("#input-image input[type=file]").set_input_files(str(tmp_path / "broken.png"))
    expect(page.locator("#upload-info")).to_contain_text("Cannot use this file: not a readable image")
    expect(page.locator("#input-image img")).to_have_count(0)

    # Denoise: pick the clean sample, add noise to it, denoise; the noise level of each input,
    # then the output, timing, PSNR against the clean image, comparison, 100 % region and
    # download appear.
    page.locator("#samples").get_by_text("Astronaut (clean)").click()
    expect(page.locator("#input-image img")).to_have_attribute("src", re.compile(r"astronaut\.png$"))
    expect(page.locator("#upload-info")).to_contain_text(re.compile(r"noise σ ≈ [0-4]\.\d \(looks clean\)"))
    page.get_by_text("add noise first").click()
    page.click("#add-noise-button")
    expect(page.locator("#input-image img")).to_have_attribute("src", re.compile(r"astronaut_noisy\.png$"))
    expect(page.locator("#upload-info")).to_contain_text(re.compile(r"noise σ ≈ 2[2-8]\.\d \(moderate\)"))
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
    save_screenshot(page, shots / "denoise.png")

    # Batch: two images and a broken one; the table lists all three, the failure included.
    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch-files input[type=file]").set_input_files(
        [str(DATA / "noisy_astronaut.png"), str(DATA / "camera.png"), str(tmp_path / "broken.png")])
    expect(page.locator("#batch-files tr")).to_have_count(3)
    page.click("#batch-button")
    expect(page.locator("#batch-summary")).to_contain_text("2 denoised, 1 failed", timeout=TIMEOUT_MS)
    expect(page.locator("#batch-table")).to_contain_text("not a readable image")
    expect(page.locator("#batch-zip a").first).to_have_attribute("href", re.compile(r"denoised\.zip$"))
    save_screenshot(page, shots / "batch.png")

    # Train: a short run on procedural images; curves and a preview appear; then hand it over.
    page.get_by_role("tab", name="Train").click()
    for button in ("#train-stop", "#train-use", "#train-export"):  # nothing to stop, use or export yet
        expect(page.locator(button)).to_be_disabled()
    for plot, title, axis, empty in (("#loss-plot", "Training loss", "loss", "Drawn once a run starts"),
                                     ("#psnr-plot", "Validation PSNR", "PSNR (dB)", "first validation")):
        caption, frame = page.locator(plot).get_by_text(empty), page.locator(plot).bounding_box()
        expect(caption).to_be_visible()
        box = caption.bounding_box()  # inside the plot's box, which cuts off what overflows it
        assert frame["y"] <= box["y"] and box["y"] + box["height"] <= frame["y"] + frame["height"], (box, frame)
        for text in (title, "step", axis):
            expect(page.locator(f"{plot} svg text").filter(has_text=text).first).to_be_visible()
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
    expect(page.locator("#train-stop")).to_be_disabled()  # finished
    expect(page.locator("#train-use")).to_be_enabled()
    expect(page.locator("#train-export")).to_be_enabled()
    expect(page.locator("#loss-plot")).not_to_contain_text("Drawn once a run starts")
    page.wait_for_timeout(1500)  # let the plots finish drawing before the picture is taken
    save_screenshot(page, shots / "train.png")
    page.click("#train-export")
    expect(page.locator("#train-export-file a").first).to_have_attribute("href", re.compile(r"model\.onnx$"),
                                                                       timeout=TIMEOUT_MS)
    page.click("#train-use")
    expect(page.get_by_role("tab", name="Denoise")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#model-picker input")).to_have_value(re.compile(r"^ui-\d{8}-\d{6}/model$"))
    # Wait for the new model to load: a test that ends mid-export would abort the interpreter.
    expect(page.locator("#model-info")).to_contain_text(re.compile(r"ui-\d{8}-\d{6}/model\.safetensors[\s\S]*runs on"),
                                                        timeout=TIMEOUT_MS)

    hosts = {urlparse(u).hostname for u in requested if urlparse(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {"127.0.0.1"}, f"the page reached out to {hosts - {'127.0.0.1'}}"
    page.close()
