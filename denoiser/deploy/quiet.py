"""Silence notices that third-party libraries print for their developers, around our calls.

ONNX Runtime's quantizer logs "Please consider to run pre-processing before quantization"
through the root logger, which also installs a stderr handler on it (`logging.warning` runs
`basicConfig` when the root has none) so that every later root record is printed too; it and
its calibrators may also print or warn. A user of `denoiser export` or `bench` can do
nothing about these, so they are dropped: our own messages are printed by our own code,
outside this block, and errors still raise.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Iterator


@contextlib.contextmanager
def third_party_quiet() -> Iterator[None]:
    """Within the block: root-logger records below ERROR, warnings and stdout are dropped.
    After it the root logger has its handlers and level as before."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for h in root.handlers[:]:
            if h not in handlers:  # the one basicConfig added: it would print later records
                root.removeHandler(h)
        root.setLevel(level)
