"""Who may do what on the page, decided in one place.

The API is the Denoise button only (`/denoise`: image and strength in, a PNG out). Every
other event (batch, training start/stop/progress, export, add noise, inspect...) is the
page's own: Gradio hides it from `view_api()` but still answers it over its raw queue to
anyone who names its `fn_index`. So each of those handlers runs only inside a page
session: one in which the page's own load event ran (`PageSessions.open`), and, with a
login, only for the user who opened it. A caller that skips the page gets a message
pointing at `/denoise`.

Without a login this keeps the private events off the API, not off the network: a script
that replays the page's requests is a browser as far as the server can tell. Access
control is `--auth-file`; on top of it a training run can be stopped only from the page
session, or by the user, that started it, and by the users named with `--admin`. Wrong
passwords are answered more slowly each time (`LoginThrottle`), per user name.

Two things here read Gradio's own event state (no public API offers them): the request and
event id of the handler that is running (`gradio.context.LocalContext`, which Gradio sets
for every handler), and whether that event's caller is still connected (`caller_gone`).
Tests in tests/app/test_access.py and tests/app/test_app_load.py exercise both against a real
server, so a Gradio change that breaks them shows.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gradio as gr

MAX_PAGES = 10_000  # page sessions remembered at once; the oldest go first
CLOSED_PAGE_KEEP_S = 3600  # a closed page's session is forgotten after this (Gradio keeps its state as long)
OUTSIDE_PAGE = ("This action belongs to the page: open (or reload) the page and use it there. "
                "Scripts can call /denoise (see 'Use via API' at the bottom of the page).")


def current_request() -> gr.Request | None:
    """The request of the event handler running in this thread (Gradio sets it per handler)."""
    from gradio.context import LocalContext

    return LocalContext.request.get(None)


def _session(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def _user(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None


@dataclass
class _Page:
    user: str | None
    opened: float
    closed: float | None = None


class PageSessions:
    """The sessions the page itself opened, and the gate that keeps private events in them."""

    def __init__(self, max_pages: int = MAX_PAGES, keep_closed_s: float = CLOSED_PAGE_KEEP_S):
        self.max_pages, self.keep_closed_s = max_pages, keep_closed_s
        self._pages: dict[str, _Page] = {}
        self._lock = threading.Lock()

    def open(self, request: gr.Request) -> None:
        """The page's load event: this session is a page."""
        session = _session(request)
        if not session:
            return
        with self._lock:
            self._pages.pop(session, None)  # re-inserted last: the newest survive pruning
            self._pages[session] = _Page(_user(request), time.time())
            self._prune()

    def close(self, request: gr.Request) -> None:
        """The page's unload event (Gradio sends it when the tab's heartbeat stops)."""
        with self._lock:
            page = self._pages.get(_session(request) or "")
            if page is not None:
                page.closed = time.time()

    def holds(self, request: gr.Request | None) -> bool:
        with self._lock:
            page = self._pages.get(_session(request) or "")
        return page is not None and page.user == _user(request)

    def _prune(self) -> None:
        now = time.time()
        for session in [s for s, p in self._pages.items() if p.closed and now - p.closed > self.keep_closed_s]:
            del self._pages[session]
        while len(self._pages) > self.max_pages:
            del self._pages[next(iter(self._pages))]

    def page_only(self, handler: Callable) -> Callable:
        """`handler`, answering only inside a page session. functools.wraps keeps its signature,
        so Gradio still hands it gr.Request, event data and the rest."""
        @functools.wraps(handler)
        def guarded(*args, **kwargs):
            if not self.holds(current_request()):
                raise gr.Error(OUTSIDE_PAGE)
            return handler(*args, **kwargs)
        return guarded

    def guard_private_events(self, demo: gr.Blocks) -> None:
        """Put every event of `demo` but the public API behind the page gate, except those the
        page load itself runs (they are what opens a page session)."""
        for fn in demo.fns.values():
            on_load = any(trigger == "load" for _, trigger in fn.targets)
            if fn.fn is not None and fn.api_visibility != "public" and not on_load:
                fn.fn = self.page_only(fn.fn)


@dataclass(frozen=True)
class _Owner:
    session: str | None
    user: str | None


class RunOwners:
    """Who started each training run, so that only they (or an admin) can stop it."""

    def __init__(self, admins: frozenset[str] = frozenset()):
        self.admins = frozenset(admins)
        self._owners: dict[str, _Owner] = {}

    def claim(self, run_dir: str, request: gr.Request | None) -> None:
        self._owners[str(run_dir)] = _Owner(_session(request), _user(request))

    def check_stop(self, run_dir: str | None, request: gr.Request | None) -> str:
        """'' if the caller started the run; a note if an admin overrides; else gr.Error."""
        owner = self._owners.get(str(run_dir)) if run_dir else None
        if owner is None:
            return ""  # no run of this server's: ui_train.stop says so
        session, user = _session(request), _user(request)
        if session and session == owner.session or user and user == owner.user:
            return ""
        if user and user in self.admins:
            return f" (admin override by {user}; started by {owner.user or 'another page'})"
        who = f"user {owner.user}" if owner.user else "the page that started it"
        raise gr.Error(f"{Path(str(run_dir)).name} was started from another page: only {who} can stop it, "
                       "or an admin (app.py --admin USER, with --auth-file). It stops by itself at its last step.")


def caller_gone(demo: gr.Blocks) -> Callable[[], bool]:
    """Called inside a handler: a check, usable from any thread, that says whether the caller
    of this event has gone (closed the tab, dropped the connection, cancelled). Gradio marks
    such an event not alive (or drops it) but cannot stop a handler running in a thread;
    long handlers ask this between steps instead."""
    from gradio.context import LocalContext

    event_id = LocalContext.event_id.get(None)
    queue = getattr(demo, "_queue", None)
    if not event_id or queue is None:  # called outside a Gradio event (tests, scripts)
        return lambda: False

    def gone() -> bool:
        event = queue.event_ids_to_events.get(event_id)
        return event is None or not event.alive or event.closed
    return gone


@dataclass
class _Tries:
    failures: int = 0
    next_try: float = 0.0
    lock: asyncio.Lock | None = None


class LoginThrottle:
    """Gradio's `auth` callable: checks user:password pairs, and answers each wrong password
    for a user name later than the one before (after `free_tries`, `base_delay_s` doubling up
    to `max_delay_s`). Tries for one name wait in line, so sending many at once gains nothing;
    it is async, so the waiting holds no thread and slows nobody else."""

    def __init__(self, users: list[tuple[str, str]], free_tries: int = 3, base_delay_s: float = 1.0,
                 max_delay_s: float = 30.0, max_names: int = 10_000):
        self.users = dict(users)
        self.free_tries, self.base_delay_s, self.max_delay_s = free_tries, base_delay_s, max_delay_s
        self.max_names = max_names
        self._tries: dict[str, _Tries] = {}

    def delay(self, failures: int) -> float:
        """Seconds the next try waits after `failures` wrong passwords in a row."""
        if failures < self.free_tries:
            return 0.0
        return min(self.max_delay_s, self.base_delay_s * 2 ** (failures - self.free_tries))

    def _matches(self, username: str, password: str) -> bool:
        known = self.users.get(username)
        # Compare against something even for an unknown name, so timing does not tell names apart.
        ok = hmac.compare_digest((known or "\0").encode(), password.encode())
        return known is not None and ok

    async def check(self, username: str, password: str) -> bool:
        key = username.strip()[:256]
        tries = self._tries.setdefault(key, _Tries())
        if tries.lock is None:
            tries.lock = asyncio.Lock()
        async with tries.lock:
            wait = tries.next_try - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            ok = self._matches(username, password)
            if ok:
                tries.failures, tries.next_try = 0, 0.0
            else:
                tries.failures += 1
                tries.next_try = time.monotonic() + self.delay(tries.failures)
        self._forget_idle()
        return ok

    def _forget_idle(self) -> None:
        """Names whose wait is over and whose lock is free cost nothing to forget; a flood of
        made-up names cannot grow this table without bound."""
        if len(self._tries) <= self.max_names:
            return
        now = time.monotonic()
        for key in [k for k, t in self._tries.items()
                    if (t.lock is None or not t.lock.locked()) and now - t.next_try > self.max_delay_s]:
            del self._tries[key]
