"""Talk to a running app the way its page does: Gradio's raw queue (`queue/join` with an
`fn_index`, answers over the `queue/data` event stream) under a session hash of our own.
The tests of the page's private events use it, both as the page would and as an outsider."""

from __future__ import annotations

import json
import mimetypes
import urllib.request
import uuid
from pathlib import Path


class PageSession:
    def __init__(self, url: str, opener: urllib.request.OpenerDirector | None = None):
        self.url = url if url.endswith("/") else url + "/"
        self.opener = opener or urllib.request.build_opener()
        self.session = uuid.uuid4().hex[:11]
        config = json.loads(self.opener.open(self.url + "config", timeout=30).read())
        self.fn_index = {d["api_name"]: d["id"] for d in config["dependencies"]}

    def upload(self, *paths: str | Path) -> list[dict]:
        """Files as Gradio's upload route takes them; returns FileData dicts for event inputs."""
        boundary = uuid.uuid4().hex
        body = b""
        for p in map(Path, paths):
            kind = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{p.name}\"\r\n"
                     f"Content-Type: {kind}\r\n\r\n").encode() + p.read_bytes() + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        req = urllib.request.Request(self.url + "gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        served = json.loads(self.opener.open(req, timeout=120).read())
        return [{"path": s, "orig_name": Path(p).name, "meta": {"_type": "gradio.FileData"}}
                for s, p in zip(served, paths)]

    def join(self, name: str, data: list) -> str:
        body = json.dumps({"data": data, "fn_index": self.fn_index[name], "session_hash": self.session,
                           "event_data": None, "trigger_id": None}).encode()
        req = urllib.request.Request(self.url + "gradio_api/queue/join", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        return json.loads(self.opener.open(req, timeout=30).read())["event_id"]

    def stream(self, timeout: float = 300):
        """The session's event stream: yields each message as a dict."""
        with self.opener.open(self.url + f"gradio_api/queue/data?session_hash={self.session}",
                              timeout=timeout) as r:
            for line in r:
                if line.startswith(b"data:"):
                    yield json.loads(line[5:])

    def call(self, name: str, data: list, timeout: float = 300) -> tuple[bool, dict]:
        """Run one event to its end: (success, output); output holds `data` or `error`."""
        event = self.join(name, data)
        for msg in self.stream(timeout):
            if msg.get("msg") == "process_completed" and msg.get("event_id") == event:
                return bool(msg.get("success")), msg.get("output") or {}
        raise AssertionError(f"{name}: the stream ended without an answer")

    def open_page(self) -> None:
        """What the page's load does first: open a page session."""
        ok, out = self.call("open", [])
        assert ok, out


def error_of(result: tuple[bool, dict]) -> str:
    ok, out = result
    assert not ok, f"expected a refusal, got {out}"
    return str(out.get("error"))
