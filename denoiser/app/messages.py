"""A refusal the page shows a person (a bad upload, a bad form) and the server logs as one line.

Gradio prints a full traceback to the server's console for every `gr.Error` unless told not
to; for a user's mistake that is noise that hides real faults, so each refusal is one
`denoiser: refused: ...` line on stderr instead.
"""

from __future__ import annotations

import sys

import gradio as gr


def user_error(message: str) -> gr.Error:
    """The error to raise for `message`; logs it as one line (the message never holds a server path)."""
    print(f"denoiser: refused: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return gr.Error(message, print_exception=False)
