"""Sign-in throttling, sessions that survive a refresh, password change and reset, through the app (AppTest).

AppTest cannot send cookies (``st.context.cookies`` is the session client's), so a "refresh" is a new AppTest whose
browser token is patched in (:func:`webapp.auth._browser_token`); the real cookie is tested in Chromium
(test_sessions_e2e.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from db import repository
from db.engine import make_engine, make_sessionmaker
from db.models import UserSession
from webapp import auth

MAIN = str(Path(__file__).resolve().parents[2] / "webapp" / "main.py")
TIMEOUT = 120


def _db(data: Path):
    return make_sessionmaker(make_engine(f"sqlite:///{data / 'drgnet.db'}"))


def _texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.title] + [e.value for e in at.caption]
    parts += [e.value for e in at.error] + [e.value for e in at.info] + [e.value for e in at.success]
    parts += [e.value for e in at.warning] + [e.value for e in at.code]
    return "\n".join(str(p) for p in parts)


def _app() -> AppTest:
    return AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()


def _login(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="login_username").input(name)
    at.text_input(key="login_password").input(password)
    return at.button[0].click().run()


def _run_users_page() -> None:
    from webapp.views.users import users_page

    users_page()


def _users_page(signed_in: AppTest) -> AppTest:
    """The Users page in the signed-in admin's session (its pages are functions; AppTest opens them directly)."""
    page = AppTest.from_function(_run_users_page, default_timeout=TIMEOUT)
    for key in ("user", auth.SESSION_KEY, auth.TOKEN_KEY):
        page.session_state[key] = signed_in.session_state[key]
    return page.run()


def _signed_in_as(at: AppTest) -> str | None:
    user = at.session_state["user"] if "user" in at.session_state else None  # noqa: SIM401 - no .get() here
    return user.username if user else None


def _actions(data: Path, action: str):
    with _db(data)() as s:
        return repository.audit_entries(s, action=action)


def test_fast_guessing_then_the_right_password_is_refused(app_env, passwords, monkeypatch):
    # Before: 15 wrong passwords in 2.6 s, then the right one signed in. The clock is the reported pace (0.17 s a
    # try) so the outcome does not depend on how fast AppTest runs on this machine.
    from datetime import timedelta

    from db.accounts import _throttling
    from db.models import utcnow

    start, tries = utcnow(), []
    monkeypatch.setattr(_throttling, "utcnow", lambda: start + timedelta(seconds=0.17 * len(tries)))
    at = _app()
    for i in range(15):
        at = _login(at, "clinician", f"guess-{i}")
        tries.append(i)
        assert _signed_in_as(at) is None
    at = _login(at, "clinician", passwords["clinician"])
    assert _signed_in_as(at) is None
    assert "Too many failed sign-ins: wait" in _texts(at)
    failed = _actions(app_env, "user.login_failed")
    assert len(failed) == 2  # t = 0 s and 1.02 s; the rest were refused unchecked until the delay ran out
    assert len(_actions(app_env, "user.login_refused")) == 14
    assert all(e.details["client"] == "local" for e in failed)
    tries.extend(range(20))  # 3.4 s later than the last failure, past its 2 s delay: the right password works
    assert _signed_in_as(_login(at, "clinician", passwords["clinician"])) == "clinician"


def test_lockout_until_an_admin_unlocks_on_the_users_page(app_env, passwords, monkeypatch):
    monkeypatch.setenv("DRGNET_LOGIN_LOCKOUT_FAILURES", "3")
    monkeypatch.setenv("DRGNET_LOGIN_DELAY_S", "0.01")
    at = _app()
    for i in range(3):
        time.sleep(0.05)
        at = _login(at, "clinician", f"guess-{i}")
    time.sleep(0.1)
    at = _login(at, "clinician", passwords["clinician"])
    assert _signed_in_as(at) is None and "locked until an administrator unlocks it" in _texts(at)

    page = _users_page(_login(_app(), "admin", passwords["admin"]))
    assert "clinician" in page.selectbox(key="us_lock").value
    page.button(key="us_unlock_btn").click().run()
    assert not page.exception, page.exception
    assert _actions(app_env, "user.unlock")[0].details["username"] == "clinician"
    assert _signed_in_as(_login(_app(), "clinician", passwords["clinician"])) == "clinician"


def test_refresh_keeps_the_session_and_sign_out_revokes_it(app_env, passwords, monkeypatch):
    at = _login(_app(), "clinician", passwords["clinician"])
    token = at.session_state[auth.TOKEN_KEY]
    monkeypatch.setattr(auth, "_browser_token", lambda: token)
    refreshed = _app()  # a new browser session that sends the cookie
    assert _signed_in_as(refreshed) == "clinician" and "Worklist" in _texts(refreshed)
    assert refreshed.session_state[auth.SESSION_KEY] == at.session_state[auth.SESSION_KEY]

    refreshed.sidebar.button(key="logout").click().run()
    assert _signed_in_as(refreshed) is None
    assert _signed_in_as(_app()) is None  # the same cookie no longer signs anyone in
    assert _signed_in_as(at.run()) is None  # nor the other tab, at its next click
    logout = _actions(app_env, "user.logout")
    assert len(logout) == 1
    with _db(app_env)() as s:
        assert s.get(UserSession, logout[0].details["session"]).revoked_reason == "logout"


def test_idle_session_expires(app_env, passwords, monkeypatch):
    monkeypatch.setenv("DRGNET_SESSION_IDLE_MINUTES", str(1.5 / 60))  # 1.5 s
    at = _login(_app(), "clinician", passwords["clinician"])
    token = at.session_state[auth.TOKEN_KEY]
    assert _signed_in_as(at.run()) == "clinician"
    time.sleep(2)
    at.run()
    assert _signed_in_as(at) is None and "You were signed out" in _texts(at)
    monkeypatch.setattr(auth, "_browser_token", lambda: token)
    assert _signed_in_as(_app()) is None
    assert [e.details["reason"] for e in _actions(app_env, "user.session_expired")] == ["idle"]


def test_disabled_account_session_dies(app_env, passwords, monkeypatch):
    at = _login(_app(), "clinician", passwords["clinician"])
    token = at.session_state[auth.TOKEN_KEY]
    with _db(app_env).begin() as s:
        repository.disable_user(s, "clinician")
    assert _signed_in_as(at.run()) is None
    monkeypatch.setattr(auth, "_browser_token", lambda: token)
    assert _signed_in_as(_app()) is None


def test_admin_reset_forces_a_change_at_next_sign_in(app_env, passwords):
    from db import accounts

    with _db(app_env).begin() as s:
        temporary = accounts.reset_password(s, "clinician", actor_id=repository.get_user(s, "admin").id)
    at = _login(_app(), "clinician", temporary)
    assert _signed_in_as(at) == "clinician"
    assert "An administrator reset your password" in _texts(at) and "Worklist" not in _texts(at)
    assert [t.label for t in at.text_input] == ["Current password", "New password", "New password again"]

    def change(current: str, new: str) -> AppTest:
        at.text_input(key="acc_current").input(current)
        at.text_input(key="acc_new").input(new)
        at.text_input(key="acc_again").input(new)
        return [b for b in at.button if b.label == "Change password"][0].click().run()

    change(temporary, "password1234")
    assert "too easy to guess" in _texts(at) and "Worklist" not in _texts(at)
    assert {i.get("url_pathname") for i in at._registered_pages.values()} <= {"account", ""}  # nothing else yet
    change(temporary, "amber-kestrel-lantern-58")
    assert not at.exception, at.exception
    assert "Password changed." in _texts(at) and "An administrator reset" not in _texts(at)
    assert {"review", "upload", "account"} <= {i.get("url_pathname") for i in at._registered_pages.values()}
    assert [e.action for e in _actions(app_env, "user.password_change")] == ["user.password_change"]
    assert _signed_in_as(_login(_app(), "clinician", "amber-kestrel-lantern-58")) == "clinician"


def test_users_page_refuses_weak_passwords_and_resets(app_env, passwords, monkeypatch):
    monkeypatch.setenv("DRGNET_LOGIN_DELAY_S", "0.01")  # the old password's failure below delays the next try
    page = _users_page(_login(_app(), "admin", passwords["admin"]))
    for weak in ("password", "12345678"):
        page.text_input(key="us_name").input("dr.weak")
        page.text_input(key="us_password").input(weak)
        [b for b in page.button if b.label == "Add user"][0].click().run()
        assert "too short" in _texts(page)
    with _db(app_env)() as s:
        assert repository.get_user(s, "dr.weak") is None

    page.selectbox(key="us_reset_who").select("clinician")
    [b for b in page.button if b.label == "Reset password"][0].click().run()
    assert not page.exception, page.exception
    temporary = page.code[0].value
    assert _actions(app_env, "user.password_reset")[0].details["username"] == "clinician"
    with _db(app_env)() as s:
        assert repository.get_user(s, "clinician").must_change_password
    assert _signed_in_as(_login(_app(), "clinician", passwords["clinician"])) is None
    time.sleep(0.05)
    assert _signed_in_as(_login(_app(), "clinician", temporary)) == "clinician"


@pytest.mark.parametrize("header,expected", [("203.0.113.9, 10.0.0.2", "10.0.0.2"), (None, "local")])
def test_client_address_behind_a_proxy(monkeypatch, header, expected):
    import streamlit as st

    class Context:
        headers = {"X-Forwarded-For": header} if header else {}
        ip_address = None

    monkeypatch.setattr(st, "context", Context())
    monkeypatch.setenv(auth.TRUST_FORWARDED_ENV, "1")
    assert auth.client_address() == expected
    monkeypatch.delenv(auth.TRUST_FORWARDED_ENV)
    assert auth.client_address() == "local"
