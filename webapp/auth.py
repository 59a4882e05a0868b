"""Sign-in state of one browser: a server-side session (db/accounts/) that survives a refresh.

``st.session_state`` lives as long as the browser's websocket: a refresh (F5) or a new tab starts an empty one. So a
sign-in also writes a cookie holding a random session token (256 bits; the database keeps only its sha256), and a
fresh page run with no user in ``st.session_state`` looks the token up (``st.context.cookies``, sent with the
websocket's opening request). Streamlit can read cookies but not set them, so the cookie is written by a line of
JavaScript in the page (``st.html(..., unsafe_allow_javascript=True)``, which runs in the app's own document, not an
iframe): ``SameSite=Strict``, ``Secure`` when the app is served over HTTPS, ``Max-Age`` the session's maximum age.
It cannot be ``HttpOnly`` (scripts write it); what keeps it safe is the server side: the token is unguessable, idle
and old sessions end (:class:`db.accounts.AccountPolicy`), and sign-out, disabling the account and a password change
revoke the row, whatever cookie a browser still holds.

Every page run re-checks the session row and the account, so a revoked session or a disabled account is signed out
on its next click. An idle screen signs itself out without a click: every signed-in page run re-arms a timer in the
browser that reloads the page once the idle time has passed, and the reloaded page finds the session ended. (A
server-side ``st.fragment(run_every=...)`` did this before; its periodic reruns raced the clinician's own clicks and
key presses on a busy server.)

Only the user's id, name and role live in ``st.session_state`` (never an ORM object, never the password).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import streamlit as st

from db import accounts, repository
from db.models import Role
from webapp.services import sessions
from webapp.state import FORGET_KEY, NOTICE_KEY, PAGE_RUNS_KEY, SESSION_KEY, STALE_KEY, TOKEN_KEY, USER_KEY

COOKIE = "drgnet_session"
#: Set to 1 behind a reverse proxy that appends the client's address to X-Forwarded-For (see client_address).
TRUST_FORWARDED_ENV = "DRGNET_TRUST_FORWARDED_FOR"
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,100}")


@dataclass(frozen=True)
class SignedIn:
    id: int
    username: str
    role: str
    must_change_password: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value


def client_address() -> str:
    """Who is trying to sign in, for the per-client throttle.

    Streamlit reports the websocket's peer address (``st.context.ip_address``; ``None`` for localhost, recorded as
    ``local``). Behind a reverse proxy every client has the proxy's address, so with ``DRGNET_TRUST_FORWARDED_FOR=1``
    the last address of ``X-Forwarded-For`` (the one the proxy appended, which a client cannot forge) is used.
    """
    if os.environ.get(TRUST_FORWARDED_ENV) == "1":
        forwarded = st.context.headers.get("X-Forwarded-For")
        last = forwarded.split(",")[-1].strip() if isinstance(forwarded, str) else ""
        if last:
            return last[:255]
    address = st.context.ip_address
    return address[:255] if isinstance(address, str) and address else "local"


def _browser_token() -> str | None:
    """The session token the browser sent when this websocket opened, if it looks like one of ours."""
    token = st.context.cookies.get(COOKIE)
    return token if isinstance(token, str) and _TOKEN_RE.fullmatch(token) else None


def _signed_in(user: object, must_change: bool) -> SignedIn:
    return SignedIn(user.id, user.username, user.role.value, must_change)  # type: ignore[attr-defined]


def _drop(notice: str | None = None) -> None:
    st.session_state.clear()
    if notice:
        st.session_state[NOTICE_KEY] = notice


def _ended_notice(policy: accounts.AccountPolicy) -> str:
    return f"You were signed out (session ended, or idle for more than {policy.session_idle_s / 60:g} minutes)."


def current_user() -> SignedIn | None:
    """The signed-in user, or None (also once the session expired or was revoked, or the account was disabled).

    Counts as activity for the idle timeout.
    """
    user = st.session_state.get(USER_KEY)
    policy = accounts.AccountPolicy.from_env()
    with sessions().begin() as session:
        if user is None:  # a fresh page (refresh, new tab): resume from the cookie
            token = _browser_token()
            row = accounts.resume_session(session, token=token, policy=policy) if token else None
            if row is None:
                if token and not st.session_state.get(FORGET_KEY) and st.session_state.get(STALE_KEY) != token:
                    st.session_state[STALE_KEY] = token  # (the cookie stays in st.context until the tab reloads)
                    st.session_state[NOTICE_KEY] = _ended_notice(policy)
                return None
            account = repository.get_user_by_id(session, row.user_id)
            user = _signed_in(account, account.must_change_password)
            st.session_state[USER_KEY] = user
            st.session_state[SESSION_KEY] = row.id
            st.session_state[TOKEN_KEY] = token
            return user
        sid = st.session_state.get(SESSION_KEY)
        if sid is not None and accounts.resume_session(session, session_id=sid, policy=policy) is None:
            _drop(_ended_notice(policy))
            return None
        row = repository.get_user_by_id(session, user.id)
        if row is None or not row.active:
            _drop()
            return None
        fresh = _signed_in(row, row.must_change_password)
        if fresh != user:  # an admin changed the role, or a password change is due / done
            st.session_state[USER_KEY] = fresh
            user = fresh
    return user


def login(username: str, password: str) -> accounts.SignInResult:
    """Check the credentials under the throttling rules and start a session; the result says why if refused."""
    client = client_address()
    with sessions().begin() as session:
        result = accounts.sign_in(session, username, password, client=client)
        if result.user is None:
            return result
        row, token = accounts.start_session(session, result.user, client=client)
        user = _signed_in(result.user, result.user.must_change_password)
        sid = row.id
    st.session_state.clear()
    st.session_state[USER_KEY] = user
    st.session_state[SESSION_KEY] = sid
    st.session_state[TOKEN_KEY] = token
    return result


def logout() -> None:
    """End the session: the server-side row is revoked, and everything this browser session held is dropped."""
    sid = st.session_state.get(SESSION_KEY)
    if sid is not None:
        with sessions().begin() as session:
            accounts.end_session(session, sid)
    _drop()
    st.session_state[FORGET_KEY] = True


def write_cookie() -> None:
    """Keep (or, signed out, remove) the session cookie in the browser; renders an invisible script."""
    token = st.session_state.get(TOKEN_KEY)
    if token and _TOKEN_RE.fullmatch(token):
        max_age = int(accounts.AccountPolicy.from_env().session_max_age_s)
        value = f"{COOKIE}={token}; Path=/; Max-Age={max_age}; SameSite=Strict"
    elif st.session_state.get(FORGET_KEY) or _browser_token() is not None:  # signed out, or a stale token
        value = f"{COOKIE}=; Path=/; Max-Age=0; SameSite=Strict"
    else:
        return
    st.html(
        f"<script>document.cookie = '{value}' + (location.protocol === 'https:' ? '; Secure' : '');</script>",
        unsafe_allow_javascript=True,
    )


def watch_session() -> None:
    """Sign an idle screen out without waiting for a click: (re)arms the browser's idle timer; renders nothing.

    The timer reloads the page once nothing has run for the idle time (plus the lag with which the server records
    activity, see :func:`db.accounts.resume_session`); the reloaded page resumes the session if another tab kept it
    alive, and shows the sign-in form otherwise. Each run's script differs (a counter), so the browser runs it again
    and the previous timer is cleared: only a truly idle screen reloads.
    """
    if st.session_state.get(SESSION_KEY) is None:
        return
    policy = accounts.AccountPolicy.from_env()
    delay_ms = int(1000 * (policy.session_idle_s + min(60.0, policy.session_idle_s / 10) + 1.0))
    runs = st.session_state[PAGE_RUNS_KEY] = st.session_state.get(PAGE_RUNS_KEY, 0) + 1
    st.html(
        f"<script>/* run {runs} */ clearTimeout(window.drgnetIdleTimer);"
        f"window.drgnetIdleTimer = setTimeout(() => window.location.reload(), {delay_ms});</script>",
        unsafe_allow_javascript=True,
    )


def require_user() -> SignedIn:
    """The signed-in user; stops the page for anyone else."""
    user = current_user()
    if user is None:
        st.warning("Please sign in.")
        st.stop()
    return user


def require_admin() -> SignedIn:
    """The signed-in admin; stops the page (showing nothing of it) for anyone else."""
    user = current_user()
    if user is None or not user.is_admin:
        st.error("This page is for administrators.")
        st.stop()
    return user
