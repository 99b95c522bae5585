"""The Gradio page: Denoise, Batch and Train tabs. This module only lays out components and
wires events; what each button does lives in ui_denoise, ui_batch and ui_train, which call
the package. No model logic here.

Public API: the Denoise button's event, `api_name="denoise"`, inputs (image, strength), output
one image (a lossless PNG path). `preprocess=False` hands the upload to our own reader (clear
errors, 16-bit kept). The model a browser session picked travels in a `gr.State`, which API
clients do not see: they get the model the app was started with. Every other event is the
page's own and answers only inside a page session (ui_access.py says why and how); batches
are page-only too (scripts loop over /denoise, or run `denoiser denoise` on the server).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr  # ui.py is only imported to build the page; `import denoiser` stays light

from denoiser.app.messages import user_error
from denoiser.core.config import FINETUNE_LR, TrainConfig
from denoiser.core.paths import DATA_DIR
from denoiser.run.catalog import (
    DEFAULT_CHECKPOINTS_DIR,
    DEFAULT_RUNS_DIR,
    discover_models,
)
from denoiser.run.inference import BACKENDS, default_model_path

if TYPE_CHECKING:
    from denoiser.app.batch_tab import BatchLimits

MAX_UPLOAD_MB = 50
DENOISE_CONCURRENCY = 2  # denoise calls running at once; the rest wait in the queue
BATCH_CONCURRENCY = 1  # batches run in a group of their own, so they never hold a denoise slot
QUEUE_SIZE = 64  # more waiting callers than this are told the server is busy
PLOT_HEIGHT = 220
# Gradio keeps every upload in its cache until the server stops: check hourly, delete those older
# than the results they gave (ui_denoise.RESULTS_MAX_AGE_S), so uploads cannot fill the disk.
UPLOAD_CACHE_PRUNE = (3600, 24 * 3600)  # (every N seconds, files older than N seconds)
SAMPLE_LABELS = {"astronaut.png": "Astronaut (clean)", "camera.png": "Camera (gray, clean)",
                 "coffee.png": "Coffee (clean)", "noisy_astronaut.png": "Noisy astronaut (σ 25)"}
NO_LOSS, NO_PSNR = {"step": [], "loss": []}, {"step": [], "val PSNR (dB)": []}  # empty plots: axes and titles
LOSS_EMPTY = "Drawn once a run starts: the training loss at every logged step."
PSNR_EMPTY = "Drawn from the run's first validation: PSNR of the validation crops, every N steps."
# Bold phrases on the model line ("ONNX Runtime fp32 on CPU") move whole to the next line instead
# of breaking in the middle. The samples' labels go under their pictures, whole, not over them cut off.
# An empty plot's caption (what it will show) sits inside its empty frame, not below the box's edge.
PAGE_CSS = """
#model-info strong { white-space: nowrap; }
#loss-plot .caption, #psnr-plot .caption { position: absolute; top: 45%; left: 15%; right: 5%; text-align: center; }
#samples .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr));
                           grid-template-rows: none; grid-auto-rows: auto; padding-top: 30px; }
#samples .thumbnail-item { aspect-ratio: auto; height: auto; display: flex; flex-direction: column; }
#samples .thumbnail-item > img { height: 80px; flex: none; }
#samples .caption-label { position: static; max-width: none; white-space: normal; text-overflow: clip;
                          border: none; border-radius: 0; text-align: center; }
"""


def launch_options(max_upload_mb: float = MAX_UPLOAD_MB) -> dict:
    """Keyword arguments for `demo.launch`: offline, nothing shared, only our own files served."""
    return {"share": False, "ssr_mode": False, "show_error": True, "max_file_size": int(max_upload_mb * 1024 * 1024),
            "css": PAGE_CSS,
            "allowed_paths": [str(DATA_DIR)],  # the sample images the Examples show
            "footer_links": ["api"]}


def start_model(model_path: str | Path | None) -> str:
    """The model the page starts with, as the picker names it (resolved)."""
    return str(Path(model_path or default_model_path()).resolve())


def build_ui(model_path: str | Path | None = None, backend: str = "auto", runs_dir: str | Path | None = None,
             data_root: str | Path | None = None, checkpoints_dir: str | Path | None = DEFAULT_CHECKPOINTS_DIR,
             batch_limits: BatchLimits | None = None, admins: tuple[str, ...] = ()):
    import pandas as pd

    from denoiser.app import access as ui_access
    from denoiser.app import batch_tab as ui_batch
    from denoiser.app import denoise_tab as ui_denoise
    from denoiser.app import train_tab as ui_train
    from denoiser.app.train_data import SOURCES
    from denoiser.core.imageio import IMAGE_EXTENSIONS
    from denoiser.core.nets import ARCHS
    from denoiser.core.noise.ops import NOISE_KINDS
    from denoiser.train.optim import SCHEDULES, SOLVERS

    model = start_model(model_path)
    examples = sorted(DATA_DIR.glob("*.png"))
    runs_dir = Path(runs_dir or DEFAULT_RUNS_DIR)
    T = ui_train.TrainForm()
    batch_limits = batch_limits or ui_batch.BatchLimits()
    pages, owners = ui_access.PageSessions(), ui_access.RunOwners(frozenset(admins))

    def model_choices(kind: str | None = None) -> list[tuple[str, str]]:
        entries = discover_models(checkpoints_dir, runs_dir, extra=(model,))
        choices = [(e.label, str(e.path)) for e in entries if kind in (None, e.kind)]
        if kind is None and model not in {path for _, path in choices}:  # e.g. the default is not there
            choices.insert(0, (f"{Path(model).name} (not found)", model))
        return choices

    def select_model(path, chosen_backend, current, quality="auto"):
        try:
            return ({"path": path, "backend": chosen_backend, "quality": quality},
                    ui_denoise.describe_model(path, chosen_backend, quality))
        except gr.Error as e:  # keep the model that works, and say so where the choice was made
            return current, f"{e.message}  \nStill using **{Path(current['path']).name}** on {current['backend']}."

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
        return str(examples[evt.index])

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

    def batch(files, strength, choice):
        return ui_batch.denoise_batch(files, strength, choice["path"], choice["backend"], limits=batch_limits,
                                      caller_gone=ui_access.caller_gone(demo))

    @ui_train.to_gr_error
    def start_training(request: gr.Request, *values):
        form = ui_train.TrainForm(**dict(zip(train_fields, values)))
        run_dir, line = ui_train.start(form, runs_dir, data_root)
        owners.claim(run_dir, request)
        return {"run_dir": run_dir, "preview": None}, line, gr.Timer(active=True)

    def stop_training(state, request: gr.Request):
        override = owners.check_stop(state["run_dir"], request)
        return ui_train.stop(state["run_dir"]) + override

    def poll(state):
        p = ui_train.progress(state["run_dir"])
        preview = gr.skip() if p.preview == state["preview"] else p.preview
        plots = (gr.update(value=pd.DataFrame(p.loss or NO_LOSS), caption="" if p.loss else LOSS_EMPTY),
                 gr.update(value=pd.DataFrame(p.psnr or NO_PSNR), caption="" if p.psnr else PSNR_EMPTY))
        buttons = (gr.update(interactive=p.running), *[gr.update(interactive=p.model is not None)] * 2)
        return ({**state, "preview": p.preview}, p.status, *plots, preview, *buttons, gr.Timer(active=p.running))

    def follow_running_run():
        run_dir = ui_train.running_run()
        if run_dir is None:
            return gr.skip(), gr.skip()
        return {"run_dir": run_dir, "preview": None}, gr.Timer(active=True)

    @ui_train.to_gr_error
    def use_model(state):
        path = ui_train.finished_model(state["run_dir"])
        return gr.update(choices=model_choices(), value=path), gr.Tabs(selected="denoise")

    @ui_train.to_gr_error
    def export(state):
        path, line = ui_train.export(state["run_dir"])
        return gr.update(value=path, visible=True), line

    with gr.Blocks(title="denoiser", analytics_enabled=False, delete_cache=UPLOAD_CACHE_PRUNE) as demo:
        choice = gr.State({"path": model, "backend": backend})
        result = gr.State({})
        reference = gr.State(None)
        run_state = gr.State({"run_dir": None, "preview": None})
        gr.Markdown("# denoiser\nClean up noisy photos and scans with a U-Net denoiser; batch-denoise folders; "
                    "retrain it on your own images and watch it learn.")
        with gr.Tabs(selected="denoise") as tabs:
            with gr.Tab("Denoise", id="denoise", elem_id="tab-denoise"):
                with gr.Row():
                    with gr.Column():
                        with gr.Row():
                            inp = gr.Image(type="filepath", label="Noisy image (upload, drop or paste)", format="png",
                                           elem_id="input-image", sources=["upload", "clipboard"], height=380,
                                           scale=3)
                            # A gallery, not gr.Examples: it shows each sample with its label in a narrow column.
                            samples = gr.Gallery([(str(p), SAMPLE_LABELS.get(p.name, p.stem)) for p in examples],
                                                 label="Samples: click one", columns=2, height=380, scale=1,
                                                 min_width=170, allow_preview=False, object_fit="cover",
                                                 interactive=False, buttons=[], elem_id="samples",
                                                 visible=bool(examples))
                        upload_info = gr.Markdown(elem_id="upload-info")
                        strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength", elem_id="strength",
                                             info="0 keeps the input, 1 is the full denoise")
                        with gr.Row(equal_height=True):
                            picker = gr.Dropdown(model_choices(), value=model, label="Model", scale=3,
                                                 elem_id="model-picker", info="checkpoints, ONNX files, engines")
                            backend_pick = gr.Dropdown(list(BACKENDS), value=backend, label="Backend", scale=1,
                                                       elem_id="backend-picker")
                            quality_pick = gr.Dropdown(list(ui_denoise.QUALITY_CHOICES), value="auto", label="Quality",
                                                       scale=1, elem_id="quality-picker",
                                                       info="fast: INT8; balanced: FP32; high: x8 ensemble")
                            rescan = gr.Button("Rescan", scale=0, min_width=80, size="sm")
                        model_info = gr.Markdown("Loading the model...", elem_id="model-info")
                        with gr.Accordion("Try it on a clean image: add noise first", open=False):
                            with gr.Row():
                                kind = gr.Dropdown(list(NOISE_KINDS), value="gaussian", label="Noise type",
                                                   elem_id="noise-kind")
                                level = gr.Slider(0, 100, value=25, step=1, label="Level", elem_id="noise-level",
                                                  info="about sigma on the 0-255 scale; JPEG: 100 - quality; "
                                                       "presets (camera) keep their own ranges")
                            with gr.Row():
                                spec = gr.Textbox(ui_denoise.demo_spec("gaussian", 25), label="Noise spec",
                                                  info="editable: any spec `denoiser train --noise` takes", scale=3)
                                seed = gr.Number(0, precision=0, label="Seed", scale=1)
                            add = gr.Button("Add noise to the image above", elem_id="add-noise-button")
                        run = gr.Button("Denoise", variant="primary", elem_id="denoise-button")
                    with gr.Column():
                        out = gr.Image(type="filepath", label="Denoised (click it to inspect that spot at 100 %)",
                                       format="png", elem_id="output-image", interactive=False, height=380)
                        info = gr.Markdown(elem_id="run-info")
                        download = gr.File(label="Download: original format and bit depth", elem_id="download")
                with gr.Row():
                    compare = gr.ImageSlider(label="Before / after", format="png", type="filepath",
                                             elem_id="compare", max_height=520, scale=2)
                    region = gr.ImageSlider(label=f"Region at 100 % ({ui_denoise.REGION} px)", format="png",
                                            type="filepath", elem_id="region", scale=1,
                                            height=ui_denoise.REGION, max_height=ui_denoise.REGION)

            with gr.Tab("Batch", id="batch", elem_id="tab-batch"):
                gr.Markdown("Denoise many images at once with the model chosen in the Denoise tab. Each result "
                            "keeps its file's format and bit depth; zips are unpacked, their folders mirrored.")
                with gr.Row():
                    with gr.Column():
                        files = gr.File(file_count="multiple", label="Images or zips", elem_id="batch-files",
                                        file_types=[*IMAGE_EXTENSIONS, ".zip"])
                        batch_strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength")
                        batch_run = gr.Button("Denoise all", variant="primary", elem_id="batch-button")
                    with gr.Column():
                        batch_zip = gr.File(label="Results (zip)", elem_id="batch-zip")
                        batch_summary = gr.Markdown(elem_id="batch-summary")
                batch_table = gr.Dataframe(headers=ui_batch.TABLE_HEADERS, label="Per file", interactive=False,
                                           elem_id="batch-table", wrap=True,
                                           column_widths=["22%", "8%", "10%", "10%", "10%", "40%"])

            with gr.Tab("Train", id="train", elem_id="tab-train"):
                with gr.Row():
                    with gr.Column(scale=2):
                        source = gr.Radio([(v, k) for k, v in SOURCES.items() if k != "folder" or data_root],
                                          value="procedural", label="Training data", elem_id="train-source")
                        zip_file = gr.File(file_types=[".zip"], label="Zip (noisy/ + clean/, or clean images)",
                                           visible=False, elem_id="train-zip")
                        folder = gr.Textbox(label=f"Folder under {data_root}", visible=False, elem_id="train-folder",
                                            placeholder="e.g. photos, or pairs holding noisy/ and clean/")
                        noise = gr.Textbox(T.noise, label="Noise added to clean images",
                                           info="e.g. gaussian:5-50, poisson-gaussian, jpeg:30-90, camera; "
                                                "kinds: " + ", ".join(NOISE_KINDS))
                        mix = gr.Checkbox(T.mix_procedural, label="Mix in procedural images")
                        ckpts = model_choices("checkpoint")
                        init = gr.Dropdown([("a new model", ui_train.NEW_MODEL), *ckpts],
                                           value=model if model in dict(ckpts).values() else ui_train.NEW_MODEL,
                                           label="Start from", info="fine-tuning keeps that model's architecture")
                        with gr.Row():
                            steps = gr.Number(T.steps, precision=0, label="Steps", minimum=1)
                            epochs = gr.Number(T.epochs, precision=0, label="Epochs (>0 overrides steps)", minimum=0)
                        with gr.Row():
                            batch_size = gr.Number(T.batch_size, precision=0, label="Batch size", minimum=1)
                            crop = gr.Number(T.crop, precision=0, label="Crop (px)", minimum=8)
                        with gr.Row():
                            lr = gr.Number(0, label=f"Learning rate (0 = auto: {TrainConfig.lr:g}, "
                                                       f"{FINETUNE_LR:g} when fine-tuning)")
                            schedule = gr.Dropdown(list(SCHEDULES), value=T.schedule, label="Schedule")
                        with gr.Row():
                            solver = gr.Dropdown(list(SOLVERS), value=T.solver, label="Solver")
                            train_seed = gr.Number(T.seed, precision=0, label="Seed")
                        with gr.Row():
                            snapshot = gr.Number(T.snapshot_interval, precision=0, label="Snapshot every N steps")
                            val_interval = gr.Number(T.val_interval, precision=0, label="Validate every N steps")
                        with gr.Accordion("More options", open=False):
                            with gr.Row():
                                log_interval = gr.Number(T.log_interval, precision=0, label="Log every N steps")
                                warmup = gr.Number(T.warmup, precision=0, label="Warm-up steps")
                                val_count = gr.Number(T.val_count, precision=0, label="Validation crops")
                            with gr.Row():
                                arch = gr.Dropdown(list(ARCHS), value=T.arch, label="Architecture (new model)")
                                width = gr.Number(T.width, precision=0, label="Width (0: the architecture's)")
                                levels = gr.Number(T.levels, precision=0, label="Levels (0: the architecture's)")
                        with gr.Row():
                            start = gr.Button("Start", variant="primary", elem_id="train-start")
                            stop = gr.Button("Stop", variant="stop", elem_id="train-stop", interactive=False)
                    with gr.Column(scale=3):
                        train_status = gr.Markdown("No run yet: choose data and options, then **Start**.",
                                                   elem_id="train-status")
                        loss_plot = gr.LinePlot(pd.DataFrame(NO_LOSS), x="step", y="loss", title="Training loss",
                                                x_title="step", y_title="loss", caption=LOSS_EMPTY,
                                                height=PLOT_HEIGHT, elem_id="loss-plot")
                        psnr_plot = gr.LinePlot(pd.DataFrame(NO_PSNR), x="step", y="val PSNR (dB)",
                                                title="Validation PSNR", x_title="step", y_title="PSNR (dB)",
                                                caption=PSNR_EMPTY, height=PLOT_HEIGHT, elem_id="psnr-plot")
                        preview = gr.Image(label="Latest validation preview: noisy | output | clean", format="png",
                                           interactive=False, elem_id="train-preview", height=300)
                        with gr.Row():
                            use = gr.Button("Use this model in the Denoise tab", elem_id="train-use", interactive=False)
                            export_button = gr.Button("Export to ONNX", elem_id="train-export", interactive=False)
                        export_file = gr.File(label="ONNX export", elem_id="train-export-file", visible=False)
                        export_line = gr.Markdown()
                form = {"source": source, "zip_path": zip_file, "folder": folder, "noise": noise,
                        "mix_procedural": mix, "init": init, "steps": steps, "epochs": epochs,
                        "batch_size": batch_size, "crop": crop, "lr": lr, "schedule": schedule, "solver": solver,
                        "seed": train_seed, "snapshot_interval": snapshot, "val_interval": val_interval,
                        "log_interval": log_interval, "warmup": warmup, "arch": arch, "width": width, "levels": levels,
                        "val_count": val_count}
                train_fields, train_inputs = list(form), list(form.values())
                timer = gr.Timer(1.0, active=False)

        private = {"api_visibility": "private"}
        demo.load(pages.open, None, None, **private)
        demo.unload(pages.close)
        gr.on([demo.load, picker.change, backend_pick.change, quality_pick.change], select_model,
              [picker, backend_pick, choice, quality_pick], [choice, model_info], **private)
        demo.load(follow_running_run, None, [run_state, timer], **private)
        rescan.click(lambda: (gr.update(choices=model_choices()),
                              gr.update(choices=[("a new model", ui_train.NEW_MODEL), *model_choices("checkpoint")])),
                     None, [picker, init], **private)
        gr.on([kind.change, level.change], ui_denoise.demo_spec, [kind, level], spec, **private)
        # One at a time: it reads the whole upload, and memory should not grow with the number of uploaders.
        inp.change(check_upload, inp, [inp, upload_info], preprocess=False, concurrency_limit=1, **private)
        inp.clear(lambda: "", None, upload_info, **private)
        samples.select(pick_sample, None, inp, **private)
        add.click(add_noise, [inp, spec, seed], [inp, reference], preprocess=False, **private)
        event = run.click(denoise, [inp, strength, choice], [out, result], api_name="denoise", preprocess=False,
                          concurrency_id="denoise", concurrency_limit=DENOISE_CONCURRENCY)
        event.success(show_result, [inp, result, reference], [compare, download, info, region], preprocess=False,
                      **private)
        out.select(inspect, [result], region, **private)
        batch_run.click(batch, [files, batch_strength, choice], [batch_zip, batch_table, batch_summary],
                        preprocess=False, concurrency_id="batch", concurrency_limit=BATCH_CONCURRENCY, **private)
        source.change(lambda s: (gr.update(visible=s.endswith("zip")), gr.update(visible=s == "folder")), source,
                      [zip_file, folder], **private)
        start.click(start_training, train_inputs, [run_state, train_status, timer], **private)
        stop.click(stop_training, run_state, train_status, **private)
        timer.tick(poll, run_state, [run_state, train_status, loss_plot, psnr_plot, preview, stop, use, export_button,
                                     timer], **private)
        use.click(use_model, run_state, [picker, tabs], **private)
        export_button.click(export, run_state, [export_file, export_line], **private)
        pages.guard_private_events(demo)  # last: every private event above answers pages only
    demo.queue(default_concurrency_limit=DENOISE_CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def _centre(path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.width // 2, im.height // 2


def read_auth_file(path: str | Path) -> list[tuple[str, str]]:
    """`user:password` per line (blank lines and # comments skipped) -> Gradio's auth list.

    A file rather than a flag, so that passwords stay out of the shell history and `ps`.
    """
    pairs = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"{path}:{n}: expected user:password")
        pairs.append((user.strip(), password))
    if not pairs:
        raise ValueError(f"{path}: no user:password line")
    return pairs


def launch(model_path: str | None = None, host: str = "127.0.0.1", port: int = 7860, backend: str = "auto",
           runs_dir: str | None = None, data_root: str | None = None, max_upload_mb: float = MAX_UPLOAD_MB,
           auth: list[tuple[str, str]] | None = None, batch_limits: BatchLimits | None = None,
           admins: tuple[str, ...] = ()) -> None:
    from denoiser.app.access import LoginThrottle

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if host not in ("127.0.0.1", "localhost", "::1") and not auth:
        print(f"denoiser: serving on {host} with no login: anyone who can reach port {port} can denoise, "
              "batch and train; pass --auth-file to ask for a password", file=sys.stderr)
    demo = build_ui(model_path, backend, runs_dir=runs_dir, data_root=data_root, batch_limits=batch_limits,
                    admins=admins)
    prepare_start_model(start_model(model_path), backend)
    # quiet: Gradio's own banner suggests `share=True`, which this app never uses; we say where it serves.
    demo.launch(server_name=host, server_port=port, auth=LoginThrottle(auth).check if auth else None, quiet=True,
                prevent_thread_lock=True, **launch_options(max_upload_mb))
    print(f"denoiser: serving on {demo.local_url} (Ctrl-C stops it)", flush=True)
    demo.block_thread()


def prepare_start_model(model: str, backend: str) -> None:
    """Load the start model before serving, so that the first denoise does not wait for it: on a
    CPU a checkpoint runs as its ONNX export, made here once (then cached) with a message."""
    from denoiser.app import denoise_tab as ui_denoise

    exported = model.endswith(".safetensors") and backend in ("auto", "onnxruntime")
    why = " (on a CPU a checkpoint runs as its ONNX export: made on the first start, then reused)" if exported else ""
    print(f"denoiser: loading {Path(model).name} on {backend}{why}...", flush=True)
    t = time.perf_counter()
    try:
        dn = ui_denoise.prepare_model(model, backend)
    except gr.Error:  # already said on the console; the page says so too, and offers the other models
        print("denoiser: the page will ask for another model", flush=True)
        return
    print(f"denoiser: ready in {time.perf_counter() - t:.1f} s: {dn.describe()}", flush=True)
