"""The Gradio page: Denoise, Batch and Train tabs around the state they share. Each tab is
laid out and wired in its own module (denoise_layout, batch_layout, train_layout); what each
button does lives in denoise_tab, batch_tab and train_tab, which call the package. This
module assembles them, wires what spans tabs, and sets the queue and launch options.

Public API: the Denoise button's event, `api_name="denoise"`, inputs (image, strength), output
one image (a lossless PNG path). `preprocess=False` hands the upload to our own reader (clear
errors, 16-bit kept). The model a browser session picked travels in a `gr.State`, which API
clients do not see: they get the model the app was started with. Every other event is the
page's own and answers only inside a page session (access.py says why and how); batches
are page-only too (scripts loop over /denoise, or run `denoiser denoise` on the server).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr  # page.py is only imported to build the page; `import denoiser` stays light

from denoiser.core.paths import DATA_DIR
from denoiser.run.catalog import (
    DEFAULT_CHECKPOINTS_DIR,
    DEFAULT_RUNS_DIR,
    discover_models,
)
from denoiser.run.inference import default_model_path

if TYPE_CHECKING:
    from denoiser.app.batch_tab import BatchLimits

MAX_UPLOAD_MB = 50
DENOISE_CONCURRENCY = 2  # denoise calls running at once; the rest wait in the queue
BATCH_CONCURRENCY = 1  # batches run in a group of their own, so they never hold a denoise slot
QUEUE_SIZE = 64  # more waiting callers than this are told the server is busy
# Gradio keeps every upload in its cache until the server stops: check hourly, delete those older
# than the results they gave (denoise_tab.RESULTS_MAX_AGE_S), so uploads cannot fill the disk.
UPLOAD_CACHE_PRUNE = (3600, 24 * 3600)  # (every N seconds, files older than N seconds)
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


def model_choices(checkpoints_dir: str | Path | None, runs_dir: Path, model: str,
                  kind: str | None = None) -> list[tuple[str, str]]:
    """The model picker's (label, path) list, found anew on each call; `kind` keeps one kind only.
    The start `model` is always offered, marked if its file is not there."""
    entries = discover_models(checkpoints_dir, runs_dir, extra=(model,))
    choices = [(e.label, str(e.path)) for e in entries if kind in (None, e.kind)]
    if kind is None and model not in {path for _, path in choices}:  # e.g. the default is not there
        choices.insert(0, (f"{Path(model).name} (not found)", model))
    return choices


def build_ui(model_path: str | Path | None = None, backend: str = "auto", runs_dir: str | Path | None = None,
             data_root: str | Path | None = None, checkpoints_dir: str | Path | None = DEFAULT_CHECKPOINTS_DIR,
             batch_limits: BatchLimits | None = None, admins: tuple[str, ...] = ()):
    """The page: the three tabs, laid out and wired by their modules, around the state they share."""
    from denoiser.app import access as ui_access
    from denoiser.app import batch_tab as ui_batch
    from denoiser.app.batch_layout import build_batch_tab, wire_batch_tab
    from denoiser.app.denoise_layout import (
        build_denoise_tab,
        select_model,
        wire_denoise_tab,
    )
    from denoiser.app.train_layout import (
        build_train_tab,
        follow_running_run,
        start_from_choices,
        wire_train_tab,
    )

    model = start_model(model_path)
    runs_dir = Path(runs_dir or DEFAULT_RUNS_DIR)
    models = functools.partial(model_choices, checkpoints_dir, runs_dir, model)
    pages, owners = ui_access.PageSessions(), ui_access.RunOwners(frozenset(admins))
    private = {"api_visibility": "private"}

    with gr.Blocks(title="denoiser", analytics_enabled=False, delete_cache=UPLOAD_CACHE_PRUNE) as demo:
        # A session's state: its model (used by Denoise and Batch), its last result and the clean
        # image noise was added to (Denoise), its training run (Train).
        choice = gr.State({"path": model, "backend": backend})
        result = gr.State({})
        reference = gr.State(None)
        run_state = gr.State({"run_dir": None, "preview": None})
        gr.Markdown("# denoiser\nClean up noisy photos and scans with a U-Net denoiser; batch-denoise folders; "
                    "retrain it on your own images and watch it learn.")
        with gr.Tabs(selected="denoise") as tabs:
            den = build_denoise_tab(sorted(DATA_DIR.glob("*.png")), model, backend, models())
            batch = build_batch_tab()
            train = build_train_tab(model, data_root, models("checkpoint"))

        # What a page load does, and the events that span tabs; then each tab's own.
        demo.load(pages.open, None, None, **private)
        demo.unload(pages.close)
        gr.on([demo.load, den.picker.change, den.backend_pick.change, den.quality_pick.change], select_model,
              [den.picker, den.backend_pick, choice, den.quality_pick], [choice, den.model_info], **private)
        demo.load(follow_running_run, None, [run_state, train.timer], **private)
        den.rescan.click(lambda: (gr.update(choices=models()), gr.update(choices=start_from_choices(models("checkpoint")))),
                         None, [den.picker, train.form["init"]], **private)
        wire_denoise_tab(den, choice, result, reference, DENOISE_CONCURRENCY)
        wire_batch_tab(demo, batch, choice, batch_limits or ui_batch.BatchLimits(), BATCH_CONCURRENCY)
        wire_train_tab(train, run_state, runs_dir, data_root, owners, models, den.picker, tabs)
        pages.guard_private_events(demo)  # last: every private event above answers pages only
    demo.queue(default_concurrency_limit=DENOISE_CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


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
