"""The Gradio page. It only calls the package: no model logic lives here.

The denoise event is the public API (`api_name="denoise"`, inputs (image, strength), output
an image); the before/after slider, download file and timing follow it as private events.
Results are PNG (lossless; 16-bit stays 16-bit), never Gradio's default lossy WebP.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path

from .imageio import ImageError, read_image, write_image
from .inference import Denoiser, default_model_path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
MAX_UPLOAD = "50mb"
MAX_PIXELS = 40_000_000  # a 40 MP upload is still fine on a laptop-class CPU with tiling
_load_lock = threading.Lock()


@lru_cache(maxsize=4)
def _cached_denoiser(path: str, backend: str) -> Denoiser:
    return Denoiser.load(path, backend=backend)


def get_denoiser(path: str, backend: str = "auto") -> Denoiser:
    with _load_lock:  # two first requests at once must not load the model twice
        return _cached_denoiser(path, backend)


def output_dir() -> Path:
    base = Path(os.environ.get("GRADIO_TEMP_DIR", tempfile.gettempdir())) / "denoiser-results"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=base))


def denoise_file(image_path: str, strength: float, model_path: str, backend: str = "auto") -> tuple[str, str]:
    """Denoise an uploaded file; return (lossless PNG path, a line saying what ran and how long)."""
    import gradio as gr

    if not image_path:
        raise gr.Error("Upload an image first.")
    try:
        arr, info = read_image(image_path, MAX_PIXELS)
    except ImageError as e:
        raise gr.Error(f"Cannot use this file: {e}") from None
    strength = float(strength if strength is not None else 1.0)
    if not 0.0 <= strength <= 1.0:
        raise gr.Error("Strength must be between 0 and 1.")
    dn = get_denoiser(model_path, backend)
    t = time.perf_counter()
    out = dn.denoise_array(arr, strength)
    seconds = time.perf_counter() - t
    name = Path(image_path).stem + "_denoised.png"
    path = write_image(output_dir() / name, out, info)
    h, w = arr.shape[:2]
    line = f"{w}x{h}, {info.bits}-bit, denoised in {seconds:.2f} s with {dn.describe()}"
    return str(path), line


def build_ui(model_path: str | Path | None = None, backend: str = "auto"):
    import gradio as gr

    model = str(model_path or default_model_path())
    examples = [str(p) for p in sorted(DATA_DIR.glob("*.png"))]

    def denoise(image, strength):
        # preprocess=False: the upload reaches our own reader untouched (bit depth, clear errors)
        path = image.get("path") if isinstance(image, dict) else image
        return denoise_file(path, strength, model, backend)

    def compare(image, result, line):
        return (image, result), result, line

    with gr.Blocks(title="denoiser", analytics_enabled=False) as demo:
        gr.Markdown(f"# denoiser\nUpload a noisy photo or scan. Model: `{Path(model).name}`")
        with gr.Tab("Denoise"):
            with gr.Row():
                with gr.Column():
                    inp = gr.Image(type="filepath", label="Noisy image", elem_id="input-image",
                                   sources=["upload", "clipboard"], format="png")
                    strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength",
                                         info="0 keeps the input, 1 is the full denoise", elem_id="strength")
                    run = gr.Button("Denoise", variant="primary", elem_id="denoise-button")
                with gr.Column():
                    out = gr.Image(type="filepath", label="Denoised", format="png", elem_id="output-image",
                                   interactive=False)
                    info = gr.Markdown(elem_id="run-info")
            slider = gr.ImageSlider(label="Before / after", format="png", type="filepath", elem_id="compare")
            download = gr.File(label="Download (lossless PNG)", elem_id="download")
            line = gr.State("")
            if examples:
                gr.Examples(examples, inputs=[inp], label="Samples")
        event = run.click(denoise, inputs=[inp, strength], outputs=[out, line], api_name="denoise", preprocess=False)
        event.success(compare, inputs=[inp, out, line], outputs=[slider, download, info], api_visibility="private")
    demo.queue(default_concurrency_limit=2, max_size=32)
    return demo


def launch(model_path: str | None = None, host: str = "127.0.0.1", port: int = 7860, backend: str = "auto") -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_ui(model_path, backend)
    demo.launch(server_name=host, server_port=port, share=False, max_file_size=MAX_UPLOAD, show_error=True,
                allowed_paths=[str(DATA_DIR)])
