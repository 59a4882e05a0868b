"""Sessions in a real headless Chromium: a refresh keeps the clinician signed in (the cookie), an idle session ends,
sign-out revokes the session on the server (the old cookie no longer works) and disabling the account ends it.

Two app servers: one with the default idle time and one with an 8-second idle time (long enough for a sign-in and a
refresh on a loaded 2-core machine, short enough to wait for).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from db import repository
from db.engine import make_engine, make_sessionmaker
from db.models import UserSession

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
TIMEOUT_MS = 90_000
COOKIE = "drgnet_session"
IDLE_S = 8


@pytest.fixture(scope="module")
def servers(seeded_template, tmp_path_factory):
    from _support_e2e_app import start_app, stop_app
    from _support_webapp_seed import copy_data

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    tmp = tmp_path_factory.mktemp("sessions-e2e")
    running = {}
    for name, env in (("default", {}), ("idle", {"DRGNET_SESSION_IDLE_MINUTES": str(IDLE_S / 60)})):
        data = copy_data(seeded_template, tmp / name / "data")
        running[name] = (*start_app(data, tmp / name / "streamlit.log", env), data)
    try:
        yield {name: (url, data) for name, (_, _, url, data) in running.items()}
    finally:
        for proc, log, _, _ in running.values():
            stop_app(proc, log)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _new_page(browser):
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return context, page


def _login(page, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Worklist").wait_for()


def _session_cookie(context) -> str | None:
    # The script that writes it runs once the signed-in page is drawn; a loaded machine may take seconds.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [c for c in context.cookies() if c["name"] == COOKIE]
        if found:
            return found[0]["value"]
        time.sleep(0.1)
    return None


def _signed_out(page) -> None:
    page.get_by_role("button", name="Sign in").wait_for()
    assert page.get_by_role("heading", name="Worklist").count() == 0


def _sessions(data: Path):
    return make_sessionmaker(make_engine(f"sqlite:///{data / 'drgnet.db'}"))


def test_refresh_keeps_the_session_and_sign_out_revokes_it(servers, browser, passwords):
    url, data = servers["default"]
    context, page = _new_page(browser)
    _login(page, url, "clinician", passwords["clinician"])
    token = _session_cookie(context)
    assert token, "the app did not set its session cookie"
    cookie = next(c for c in context.cookies() if c["name"] == COOKIE)
    assert cookie["sameSite"] == "Strict" and cookie["expires"] > time.time() + 3600

    page.reload()
    page.get_by_role("heading", name="Worklist").wait_for()
    assert page.get_by_label("User name").count() == 0
    page.goto(f"{url}/dashboard")  # a new page load of another page: still signed in
    page.get_by_text("Signed in as").first.wait_for()
    assert page.get_by_label("User name").count() == 0

    page.get_by_role("button", name="Sign out").click()
    _signed_out(page)
    page.reload()
    _signed_out(page)
    # The server revoked it: the old token, put back into a fresh browser, signs nobody in.
    other, again = _new_page(browser)
    other.add_cookies([{"name": COOKIE, "value": token, "url": url}])
    again.goto(url)
    _signed_out(again)
    with _sessions(data)() as s:
        rows = s.query(UserSession).all()
        assert [r.revoked_reason for r in rows] == ["logout"]
        assert repository.audit_entries(s, action="user.logout")
    context.close()
    other.close()


def test_disabled_account_session_dies(servers, browser, passwords):
    url, data = servers["default"]
    context, page = _new_page(browser)
    _login(page, url, "clinician", passwords["clinician"])
    assert _session_cookie(context)
    with _sessions(data).begin() as s:
        repository.disable_user(s, "clinician")
    page.reload()
    _signed_out(page)
    context.close()


def test_idle_session_expires(servers, browser, passwords):
    url, data = servers["idle"]
    context, page = _new_page(browser)
    _login(page, url, "clinician", passwords["clinician"])
    token = _session_cookie(context)
    assert token
    page.reload()  # within the idle time: still signed in
    page.get_by_role("heading", name="Worklist").wait_for()
    # Idle: the screen signs itself out (the session watcher), without a click.
    page.get_by_text("You were signed out").wait_for(timeout=(IDLE_S + 40) * 1000)
    _signed_out(page)
    page.reload()
    _signed_out(page)
    with _sessions(data)() as s:
        assert [r.revoked_reason for r in s.query(UserSession).all()] == ["idle"]
    context.close()
