"""The Denoise tab on the page: its components, and the events that stay inside it.

What each button does lives in denoise_tab.py; here the tab is laid out and its handlers
unpack the components' values for it. The handlers' names are the events' names on the page
(Gradio derives them from the function names), so they keep them.

Public API: the Denoise button's event, `api_name="denoise"` (see page.py's docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from denoiser.app import denoise_tab as ui_denoise
from denoiser.app.messages import user_error
from denoiser.core.noise.ops import NOISE_KINDS
from denoiser.deploy.backends import BACKEND_CHOICES

SAMPLE_LABELS = {"astronaut.png": "Astronaut (clean)", "camera.png": "Camera (gray, clean)",
                 "coffee.png": "Coffee (clean)", "noisy_astronaut.png": "Noisy astronaut (σ 25)"}
PRIVATE = {"api_visibility": "private"}  # every event but /denoise is the page's own (access.py)


@dataclass(frozen=True, eq=False)
class DenoiseTab:
    """The Denoise tab's components that events refer to."""

    inp: gr.Image
    samples: gr.Gallery
    upload_info: gr.Markdown
    strength: gr.Slider
    picker: gr.Dropdown
    backend_pick: gr.Dropdown
    quality_pick: gr.Dropdown
    rescan: gr.Button
    model_info: gr.Markdown
    kind: gr.Dropdown
    level: gr.Slider
    spec: gr.Textbox
    seed: gr.Number
    add: gr.Button
    run: gr.Button
    out: gr.Image
    info: gr.Markdown
    download: gr.File
    compare: gr.ImageSlider
    region: gr.ImageSlider
    examples: tuple[Path, ...]


def _input_column(examples: list[Path], model: str, backend: str, model_choices: list[tuple[str, str]]) -> dict:
    """The left column: the upload, its samples, the model and the noise demo."""
    c = {}
    with gr.Row():
        c["inp"] = gr.Image(type="filepath", label="Noisy image (upload, drop or paste)", format="png",
                            elem_id="input-image", sources=["upload", "clipboard"], height=380, scale=3)
        # A gallery, not gr.Examples: it shows each sample with its label in a narrow column.
        c["samples"] = gr.Gallery([(str(p), SAMPLE_LABELS.get(p.name, p.stem)) for p in examples],
                                  label="Samples: click one", columns=2, height=380, scale=1, min_width=170,
                                  allow_preview=False, object_fit="cover", interactive=False, buttons=[],
                                  elem_id="samples", visible=bool(examples))
    c["upload_info"] = gr.Markdown(elem_id="upload-info")
    c["strength"] = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength", elem_id="strength",
                              info="0 keeps the input, 1 is the full denoise")
    with gr.Row(equal_height=True):
        c["picker"] = gr.Dropdown(model_choices, value=model, label="Model", scale=3, elem_id="model-picker",
                                  info="checkpoints, ONNX files, engines")
        c["backend_pick"] = gr.Dropdown(list(BACKEND_CHOICES), value=backend, label="Backend", scale=1,
                                        elem_id="backend-picker")
        c["quality_pick"] = gr.Dropdown(list(ui_denoise.QUALITY_CHOICES), value="auto", label="Quality", scale=1,
                                        elem_id="quality-picker", info="fast: INT8; balanced: FP32; high: x8 ensemble")
        c["rescan"] = gr.Button("Rescan", scale=0, min_width=80, size="sm")
    c["model_info"] = gr.Markdown("Loading the model...", elem_id="model-info")
    with gr.Accordion("Try it on a clean image: add noise first", open=False):
        with gr.Row():
            c["kind"] = gr.Dropdown(list(NOISE_KINDS), value="gaussian", label="Noise type", elem_id="noise-kind")
            c["level"] = gr.Slider(0, 100, value=25, step=1, label="Level", elem_id="noise-level",
                                   info="about sigma on the 0-255 scale; JPEG: 100 - quality; "
                                        "presets (camera) keep their own ranges")
        with gr.Row():
            c["spec"] = gr.Textbox(ui_denoise.demo_spec("gaussian", 25), label="Noise spec",
                                   info="editable: any spec `denoiser train --noise` takes", scale=3)
            c["seed"] = gr.Number(0, precision=0, label="Seed", scale=1)
        c["add"] = gr.Button("Add noise to the image above", elem_id="add-noise-button")
    c["run"] = gr.Button("Denoise", variant="primary", elem_id="denoise-button")
    return c


def build_denoise_tab(examples: list[Path], model: str, backend: str,
                      model_choices: list[tuple[str, str]]) -> DenoiseTab:
    """Lay out the Denoise tab (inside the page's gr.Tabs)."""
    with gr.Tab("Denoise", id="denoise", elem_id="tab-denoise"):
        with gr.Row():
            with gr.Column():
                c = _input_column(examples, model, backend, model_choices)
            with gr.Column():
                c["out"] = gr.Image(type="filepath", label="Denoised (click it to inspect that spot at 100 %)",
                                    format="png", elem_id="output-image", interactive=False, height=380)
                c["info"] = gr.Markdown(elem_id="run-info")
                c["download"] = gr.File(label="Download: original format and bit depth", elem_id="download")
        with gr.Row():
            c["compare"] = gr.ImageSlider(label="Before / after", format="png", type="filepath", elem_id="compare",
                                          max_height=520, scale=2)
            c["region"] = gr.ImageSlider(label=f"Region at 100 % ({ui_denoise.REGION} px)", format="png",
                                         type="filepath", elem_id="region", scale=1, height=ui_denoise.REGION,
                                         max_height=ui_denoise.REGION)
    return DenoiseTab(**c, examples=tuple(examples))


def select_model(path, chosen_backend, current, quality="auto"):
    """The picker's choice becomes the session's model, if it loads."""
    try:
        return ({"path": path, "backend": chosen_backend, "quality": quality},
                ui_denoise.describe_model(path, chosen_backend, quality))
    except gr.Error as e:  # keep the model that works, and say so where the choice was made
        return current, f"{e.message}  \nStill using **{Path(current['path']).name}** on {current['backend']}."


def wire_denoise_tab(tab: DenoiseTab, choice: gr.State, result: gr.State, reference: gr.State,
                     concurrency: int) -> None:
    """The tab's own events. `choice` is the session's model (the Batch tab uses it too);
    `result` the last denoise, `reference` the clean image noise was added to (for PSNR);
    `concurrency` how many denoise calls run at once (the page's queue policy)."""

    def denoise(image, strength, choice):
        r = ui_denoise.denoise_upload(ui_denoise.upload_path(image), strength, choice["path"], choice["backend"],
                                      quality=choice.get("quality"))
        return r["png"], r

    def show_result(image, r, reference):
        x, y = _centre(r["png"])
        psnr = ui_denoise.psnr_line(reference, ui_denoise.upload_path(image), r["png"])
        line = r["line"] + (f"  \n{psnr}" if psnr else "")
        return (r["before"], r["png"]), r["download"], line, ui_denoise.inspect_region(r["before"], r["png"], x, y)

    def inspect(r, evt: gr.SelectData):
        if not r:
            raise user_error("Denoise an image first.")
        return ui_denoise.inspect_region(r["before"], r["png"], *evt.index[:2])

    def pick_sample(evt: gr.SelectData):
        return str(tab.examples[evt.index])

    def check_upload(image):
        """A new image in the input: say its noise level; a file we cannot read is cleared, not
        left as a broken picture, and the message stays where the picture was."""
        path = ui_denoise.upload_path(image)
        if not path:  # cleared (by the user: .clear empties the line; by us: the message stays)
            return gr.skip(), gr.skip()
        try:
            return gr.skip(), ui_denoise.upload_summary(path)
        except gr.Error as e:
            return None, f"**{e.message}**"

    def add_noise(image, spec, seed):
        return ui_denoise.add_noise(ui_denoise.upload_path(image), spec, seed)

    t = tab
    gr.on([t.kind.change, t.level.change], ui_denoise.demo_spec, [t.kind, t.level], t.spec, **PRIVATE)
    # One at a time: it reads the whole upload, and memory should not grow with the number of uploaders.
    t.inp.change(check_upload, t.inp, [t.inp, t.upload_info], preprocess=False, concurrency_limit=1, **PRIVATE)
    t.inp.clear(lambda: "", None, t.upload_info, **PRIVATE)
    t.samples.select(pick_sample, None, t.inp, **PRIVATE)
    t.add.click(add_noise, [t.inp, t.spec, t.seed], [t.inp, reference], preprocess=False, **PRIVATE)
    event = t.run.click(denoise, [t.inp, t.strength, choice], [t.out, result], api_name="denoise", preprocess=False,
                        concurrency_id="denoise", concurrency_limit=concurrency)
    event.success(show_result, [t.inp, result, reference], [t.compare, t.download, t.info, t.region],
                  preprocess=False, **PRIVATE)
    t.out.select(inspect, [result], t.region, **PRIVATE)


def _centre(path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.width // 2, im.height // 2
