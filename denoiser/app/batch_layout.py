"""The Batch tab on the page: its components and its one event (batch_tab.py does the work).

It denoises with the model the session chose in the Denoise tab (`choice`), and is the
page's own: scripts loop over /denoise, or run `denoiser denoise` on the server.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from denoiser.app import access as ui_access
from denoiser.app import batch_tab as ui_batch
from denoiser.core.imageio import IMAGE_EXTENSIONS


@dataclass(frozen=True, eq=False)
class BatchTab:
    """The Batch tab's components that its event refers to."""

    files: gr.File
    strength: gr.Slider
    run: gr.Button
    zip: gr.File
    summary: gr.Markdown
    table: gr.Dataframe


def build_batch_tab() -> BatchTab:
    """Lay out the Batch tab (inside the page's gr.Tabs)."""
    with gr.Tab("Batch", id="batch", elem_id="tab-batch"):
        gr.Markdown("Denoise many images at once with the model chosen in the Denoise tab. Each result "
                    "keeps its file's format and bit depth; zips are unpacked, their folders mirrored.")
        with gr.Row():
            with gr.Column():
                files = gr.File(file_count="multiple", label="Images or zips", elem_id="batch-files",
                                file_types=[*IMAGE_EXTENSIONS, ".zip"])
                strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength")
                run = gr.Button("Denoise all", variant="primary", elem_id="batch-button")
            with gr.Column():
                zip_file = gr.File(label="Results (zip)", elem_id="batch-zip")
                summary = gr.Markdown(elem_id="batch-summary")
        table = gr.Dataframe(headers=ui_batch.TABLE_HEADERS, label="Per file", interactive=False,
                             elem_id="batch-table", wrap=True,
                             column_widths=["22%", "8%", "10%", "10%", "10%", "40%"])
    return BatchTab(files, strength, run, zip_file, summary, table)


def wire_batch_tab(demo: gr.Blocks, tab: BatchTab, choice: gr.State, limits: ui_batch.BatchLimits,
                   concurrency: int) -> None:
    """The Denoise all button. Batches run in a concurrency group of their own (`concurrency`
    at once), so they never hold a denoise slot; one whose caller left `demo` stops early."""

    def batch(files, strength, choice):
        return ui_batch.denoise_batch(files, strength, choice["path"], choice["backend"], limits=limits,
                                      caller_gone=ui_access.caller_gone(demo))

    tab.run.click(batch, [tab.files, tab.strength, choice], [tab.zip, tab.table, tab.summary], preprocess=False,
                  concurrency_id="batch", concurrency_limit=concurrency, api_visibility="private")
