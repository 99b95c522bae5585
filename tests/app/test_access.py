"""Access against a live local server: only /denoise is API; the page's other events answer
only inside a page session (one its load event opened, for the user who opened it); a
training run stops only for the session or user that started it, or an admin; and wrong
passwords are answered more slowly each time. The private events are driven over Gradio's
raw queue (tests/app/page_protocol.py), once as the page does and once as an outsider."""

import dataclasses
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from types import SimpleNamespace

import pytest
from conftest import DATA
from page_protocol import PageSession, error_of
from test_app import free_port

from denoiser.app import train_tab as ui_train

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
USERS = [("alice", "a-pw"), ("bob", "b-pw"), ("root", "r-pw")]
LOGIN_DELAY_S = 0.5  # the throttle's first wait, short for the test (the app's is 1 s)
TINY_FORM = ui_train.TrainForm(steps=100_000, width=8, levels=2, crop=32, batch_size=4, val_count=4,
                               val_interval=50, log_interval=2, snapshot_interval=1000, warmup=0)


def serve(checkpoint, tmp_path_factory, auth=None, admins=()):
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio"))
    from denoiser.app.page import build_ui, launch_options

    runs = tmp_path_factory.mktemp("runs")
    demo = build_ui(checkpoint, runs_dir=runs, admins=admins)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, auth=auth,
                **launch_options(4))
    return SimpleNamespace(url=f"http://127.0.0.1:{port}/", demo=demo, runs=runs)


@pytest.fixture(scope="module")
def app(tiny_checkpoint, tmp_path_factory):
    app = serve(tiny_checkpoint, tmp_path_factory)
    yield app
    app.demo.close()


@pytest.fixture(scope="module")
def auth_app(tiny_checkpoint, tmp_path_factory):
    from denoiser.app.access import LoginThrottle

    app = serve(tiny_checkpoint, tmp_path_factory, auth=LoginThrottle(USERS, base_delay_s=LOGIN_DELAY_S).check,
                admins=("root",))
    yield app
    app.demo.close()


@pytest.fixture
def no_run_left():
    yield
    for job in ui_train._jobs.values():  # never leave a training thread behind for the next test
        job.stop()
        job.wait(120)


def train_form() -> list:
    return list(dataclasses.asdict(TINY_FORM).values())  # the page sends the form in this order


def login(app, user: str, password: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    opener.open(app.url + "login", urllib.parse.urlencode({"username": user, "password": password}).encode(),
                timeout=120)
    return opener


def test_private_events_answer_only_inside_a_page_session(app, tmp_path, no_run_left):
    outsider = PageSession(app.url)
    image = outsider.upload(DATA / "noisy_astronaut.png")
    refused = {
        "batch": outsider.call("batch", [image, 1.0, None]),
        "start_training": outsider.call("start_training", train_form()),
        "export": outsider.call("export", [None]),
        "add_noise": outsider.call("add_noise", [image[0], "gaussian:25", 0]),
        "stop_training": outsider.call("stop_training", [None]),
    }
    for name, result in refused.items():
        assert "belongs to the page" in error_of(result), name
    assert not any(app.runs.iterdir()) and not ui_train.running_run()  # refused before doing anything

    page = PageSession(app.url)
    page.open_page()
    image = page.upload(DATA / "noisy_astronaut.png")
    ok, out = page.call("batch", [image, 1.0, None])
    assert ok and "1 denoised, 0 failed" in out["data"][2]
    ok, out = page.call("add_noise", [image[0], "gaussian:25", 0])
    assert ok and out["data"][0]["path"].endswith("_noisy.png")


def test_only_the_page_that_started_a_run_can_stop_it(app, no_run_left):
    starter, other = PageSession(app.url), PageSession(app.url)
    starter.open_page()
    other.open_page()
    ok, out = starter.call("start_training", train_form())
    assert ok and "Started" in out["data"][1], out
    run = ui_train.running_run()
    ok, _ = other.call("follow_running_run", [])  # a page opened while a run goes follows it
    assert ok
    assert "started from another page" in error_of(other.call("stop_training", [None]))
    assert ui_train.job_for(run).running
    ok, out = starter.call("stop_training", [None])
    assert ok and "Stopping" in out["data"][0]
    assert ui_train.job_for(run).wait(120)


def test_with_a_login_the_user_that_started_a_run_or_an_admin_can_stop_it(auth_app, no_run_left):
    alice, bob, root = (login(auth_app, user, pw) for user, pw in USERS)
    first, second = PageSession(auth_app.url, alice), PageSession(auth_app.url, alice)
    bobs, roots = PageSession(auth_app.url, bob), PageSession(auth_app.url, root)
    for page in (first, second, bobs, roots):
        page.open_page()
        page.call("follow_running_run", [])

    stolen = PageSession(auth_app.url, bob)
    stolen.session = first.session  # bob replays alice's page session: it is alice's, not his
    assert "belongs to the page" in error_of(stolen.call("start_training", train_form()))

    assert first.call("start_training", train_form())[0]
    run = ui_train.running_run()
    bobs.call("follow_running_run", [])
    assert "only user alice can stop it" in error_of(bobs.call("stop_training", [None]))
    roots.call("follow_running_run", [])
    ok, out = roots.call("stop_training", [None])
    assert ok and "admin override by root" in out["data"][0]
    assert ui_train.job_for(run).wait(120)

    assert first.call("start_training", train_form())[0]
    run = ui_train.running_run()
    second.call("follow_running_run", [])  # alice's other tab
    ok, out = second.call("stop_training", [None])
    assert ok and "Stopping" in out["data"][0] and "override" not in out["data"][0]
    assert ui_train.job_for(run).wait(120)


def test_wrong_passwords_are_answered_more_slowly_each_time(auth_app):
    """The wait runs from a name's last failure, so it is measured from the end of the answer
    before (less the few milliseconds between the check and that answer leaving: 0.9x)."""
    ends: dict[str, float] = {}

    def attempt(user: str, password: str) -> tuple[bool, float, float]:
        """(accepted, seconds this try took, seconds since this name's last answer)"""
        t0 = time.perf_counter()
        try:
            login(auth_app, user, password)
            ok = True
        except urllib.error.HTTPError as e:
            assert e.code == 400
            ok = False
        end = time.perf_counter()
        since = end - ends.get(user, t0)
        ends[user] = end
        return ok, end - t0, since

    free = [attempt("bob", f"guess{k}") for k in range(3)]
    assert not any(ok for ok, _, _ in free) and max(s for _, s, _ in free) < LOGIN_DELAY_S
    slowed = [attempt("bob", f"guess{k}") for k in range(3, 5)]
    assert not any(ok for ok, _, _ in slowed)
    assert slowed[0][2] >= 0.9 * LOGIN_DELAY_S and slowed[1][2] >= 0.9 * 2 * LOGIN_DELAY_S
    ok, seconds, _ = attempt("alice", "a-pw")
    assert ok and seconds < LOGIN_DELAY_S  # other names are not slowed
    ok, _, since = attempt("bob", "b-pw")  # the right password still works, after the wait (4x)
    assert ok and since >= 0.9 * 4 * LOGIN_DELAY_S
    assert attempt("bob", "b-pw")[1] < LOGIN_DELAY_S  # and a success resets the count
