"""The Train tab on the page: the run's form, its curves and preview, and the events that
start, follow, stop, use and export a run (train_tab.py does the work).

The form's components are sent in `TrainForm`'s field order, so a handler rebuilds the form
by zipping names and values. A training run may be stopped only by whoever started it (or an
admin): `RunOwners` in access.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import gradio as gr
import pandas as pd

from denoiser.app import train_tab as ui_train
from denoiser.app.access import RunOwners
from denoiser.app.train_data import SOURCES
from denoiser.core.config import FINETUNE_LR, TrainConfig
from denoiser.core.nets import ARCHS
from denoiser.core.noise.ops import NOISE_KINDS
from denoiser.train.optim import SCHEDULES, SOLVERS

PLOT_HEIGHT = 220
NO_LOSS, NO_PSNR = {"step": [], "loss": []}, {"step": [], "val PSNR (dB)": []}  # empty plots: axes and titles
LOSS_EMPTY = "Drawn once a run starts: the training loss at every logged step."
PSNR_EMPTY = "Drawn from the run's first validation: PSNR of the validation crops, every N steps."
PRIVATE = {"api_visibility": "private"}  # the page's own events (access.py)


@dataclass(frozen=True, eq=False)
class TrainTab:
    """The Train tab's components that events refer to; `form` holds TrainForm's fields, in order."""

    form: dict[str, gr.components.Component]
    start: gr.Button
    stop: gr.Button
    status: gr.Markdown
    loss_plot: gr.LinePlot
    psnr_plot: gr.LinePlot
    preview: gr.Image
    use: gr.Button
    export_button: gr.Button
    export_file: gr.File
    export_line: gr.Markdown
    timer: gr.Timer


def start_from_choices(checkpoints: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The "Start from" list: a new model, or one of the checkpoints to fine-tune."""
    return [("a new model", ui_train.NEW_MODEL), *checkpoints]


def _form_column(model: str, data_root, checkpoints: list[tuple[str, str]]) -> dict:
    """The left column's form: TrainForm's fields, in its order (Start and Stop go below it)."""
    T = ui_train.TrainForm()
    f = {}
    f["source"] = gr.Radio([(v, k) for k, v in SOURCES.items() if k != "folder" or data_root],
                           value="procedural", label="Training data", elem_id="train-source")
    f["zip_path"] = gr.File(file_types=[".zip"], label="Zip (noisy/ + clean/, or clean images)", visible=False,
                            elem_id="train-zip")
    f["folder"] = gr.Textbox(label=f"Folder under {data_root}", visible=False, elem_id="train-folder",
                             placeholder="e.g. photos, or pairs holding noisy/ and clean/")
    f["noise"] = gr.Textbox(T.noise, label="Noise added to clean images",
                            info="e.g. gaussian:5-50, poisson-gaussian, jpeg:30-90, camera; "
                                 "kinds: " + ", ".join(NOISE_KINDS))
    f["mix_procedural"] = gr.Checkbox(T.mix_procedural, label="Mix in procedural images")
    f["init"] = gr.Dropdown(start_from_choices(checkpoints),
                            value=model if model in dict(checkpoints).values() else ui_train.NEW_MODEL,
                            label="Start from", info="fine-tuning keeps that model's architecture")
    with gr.Row():
        f["steps"] = gr.Number(T.steps, precision=0, label="Steps", minimum=1)
        f["epochs"] = gr.Number(T.epochs, precision=0, label="Epochs (>0 overrides steps)", minimum=0)
    with gr.Row():
        f["batch_size"] = gr.Number(T.batch_size, precision=0, label="Batch size", minimum=1)
        f["crop"] = gr.Number(T.crop, precision=0, label="Crop (px)", minimum=8)
    with gr.Row():
        f["lr"] = gr.Number(0, label=f"Learning rate (0 = auto: {TrainConfig.lr:g}, {FINETUNE_LR:g} when fine-tuning)")
        f["schedule"] = gr.Dropdown(list(SCHEDULES), value=T.schedule, label="Schedule")
    with gr.Row():
        f["solver"] = gr.Dropdown(list(SOLVERS), value=T.solver, label="Solver")
        f["seed"] = gr.Number(T.seed, precision=0, label="Seed")
    with gr.Row():
        f["snapshot_interval"] = gr.Number(T.snapshot_interval, precision=0, label="Snapshot every N steps")
        f["val_interval"] = gr.Number(T.val_interval, precision=0, label="Validate every N steps")
    with gr.Accordion("More options", open=False):
        with gr.Row():
            f["log_interval"] = gr.Number(T.log_interval, precision=0, label="Log every N steps")
            f["warmup"] = gr.Number(T.warmup, precision=0, label="Warm-up steps")
            f["val_count"] = gr.Number(T.val_count, precision=0, label="Validation crops")
        with gr.Row():
            f["arch"] = gr.Dropdown(list(ARCHS), value=T.arch, label="Architecture (new model)")
            f["width"] = gr.Number(T.width, precision=0, label="Width (0: the architecture's)")
            f["levels"] = gr.Number(T.levels, precision=0, label="Levels (0: the architecture's)")
    return {field.name: f[field.name] for field in fields(ui_train.TrainForm)}  # the order the page sends


def _run_column() -> dict:
    """The right column: the run's status, curves and preview, and what to do with its model."""
    c = {}
    c["status"] = gr.Markdown("No run yet: choose data and options, then **Start**.", elem_id="train-status")
    c["loss_plot"] = gr.LinePlot(pd.DataFrame(NO_LOSS), x="step", y="loss", title="Training loss", x_title="step",
                                 y_title="loss", caption=LOSS_EMPTY, height=PLOT_HEIGHT, elem_id="loss-plot")
    c["psnr_plot"] = gr.LinePlot(pd.DataFrame(NO_PSNR), x="step", y="val PSNR (dB)", title="Validation PSNR",
                                 x_title="step", y_title="PSNR (dB)", caption=PSNR_EMPTY, height=PLOT_HEIGHT,
                                 elem_id="psnr-plot")
    c["preview"] = gr.Image(label="Latest validation preview: noisy | output | clean", format="png",
                            interactive=False, elem_id="train-preview", height=300)
    with gr.Row():
        c["use"] = gr.Button("Use this model in the Denoise tab", elem_id="train-use", interactive=False)
        c["export_button"] = gr.Button("Export to ONNX", elem_id="train-export", interactive=False)
    c["export_file"] = gr.File(label="ONNX export", elem_id="train-export-file", visible=False)
    c["export_line"] = gr.Markdown()
    return c


def build_train_tab(model: str, data_root, checkpoints: list[tuple[str, str]]) -> TrainTab:
    """Lay out the Train tab (inside the page's gr.Tabs). A server folder is offered as data
    only when the app was given a `data_root`; `checkpoints` are what a run may start from."""
    with gr.Tab("Train", id="train", elem_id="tab-train"):
        with gr.Row():
            with gr.Column(scale=2):
                form = _form_column(model, data_root, checkpoints)
                with gr.Row():
                    start = gr.Button("Start", variant="primary", elem_id="train-start")
                    stop = gr.Button("Stop", variant="stop", elem_id="train-stop", interactive=False)
            with gr.Column(scale=3):
                run = _run_column()
        timer = gr.Timer(1.0, active=False)
    return TrainTab(form=form, start=start, stop=stop, timer=timer, **run)


def follow_running_run():
    """On page load: follow the run going on this server, if any (a reloaded page finds it again)."""
    run_dir = ui_train.running_run()
    if run_dir is None:
        return gr.skip(), gr.skip()
    return {"run_dir": run_dir, "preview": None}, gr.Timer(active=True)


def wire_train_tab(tab: TrainTab, run_state: gr.State, runs_dir: Path, data_root, owners: RunOwners,
                   model_choices: Callable[[], list[tuple[str, str]]], picker: gr.Dropdown, tabs: gr.Tabs) -> None:
    """The tab's events. `run_state` is the session's run; a finished model goes to the Denoise
    tab's `picker` (refreshed from `model_choices`), and `tabs` switches there."""
    train_fields, train_inputs = list(tab.form), list(tab.form.values())

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

    @ui_train.to_gr_error
    def use_model(state):
        path = ui_train.finished_model(state["run_dir"])
        return gr.update(choices=model_choices(), value=path), gr.Tabs(selected="denoise")

    @ui_train.to_gr_error
    def export(state):
        path, line = ui_train.export(state["run_dir"])
        return gr.update(value=path, visible=True), line

    t, source = tab, tab.form["source"]
    source.change(lambda s: (gr.update(visible=s.endswith("zip")), gr.update(visible=s == "folder")), source,
                  [t.form["zip_path"], t.form["folder"]], **PRIVATE)
    t.start.click(start_training, train_inputs, [run_state, t.status, t.timer], **PRIVATE)
    t.stop.click(stop_training, run_state, t.status, **PRIVATE)
    t.timer.tick(poll, run_state, [run_state, t.status, t.loss_plot, t.psnr_plot, t.preview, t.stop, t.use,
                                   t.export_button, t.timer], **PRIVATE)
    t.use.click(use_model, run_state, [picker, tabs], **PRIVATE)
    t.export_button.click(export, run_state, [t.export_file, t.export_line], **PRIVATE)
