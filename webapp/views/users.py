"""Users (admins only): add accounts, disable them, reset passwords, lift lockouts."""

from __future__ import annotations

import streamlit as st

from db import accounts, repository
from db.models import Role, ThrottleScope
from db.passwords import MIN_PASSWORD_LENGTH
from webapp import auth, state
from webapp.services import sessions


def users_page() -> None:
    admin = auth.require_admin()
    st.title("Users")
    factory = sessions()
    with factory() as session:
        users = repository.list_users(session)
        locks = accounts.locked_out(session)
        locked_names = {r.key for r in locks if r.scope == ThrottleScope.ACCOUNT}
        table = {
            "User": [u.username for u in users],
            "Role": [u.role.value for u in users],
            "Active": [u.active for u in users],
            "Locked out": [u.username in locked_names for u in users],
            "Must change password": [u.must_change_password for u in users],
            "Created": [u.created_at.strftime("%Y-%m-%d %H:%M") for u in users],
        }
    st.dataframe(table, hide_index=True, width="stretch")
    _lockouts(factory, admin, locks)
    _add_user(factory, admin)
    _reset_password(factory, admin, [u.username for u in users if u.active and u.id != admin.id])

    st.subheader("Disable a user")
    others = [u.username for u in users if u.active and u.id != admin.id]
    if not others:
        st.caption("No other active accounts.")
        return
    who = st.selectbox("Account", others, key="us_disable")
    if st.button("Disable", key="us_disable_btn"):
        with factory.begin() as session:
            repository.disable_user(session, who, actor_id=admin.id)
        st.success(f"{who} can no longer sign in; their sessions ended; their annotations stay.")
        st.rerun()


def _lockouts(factory, admin: auth.SignedIn, locks: list) -> None:
    st.subheader("Locked out")
    if not locks:
        st.caption("No account or computer is locked by failed sign-ins.")
        return
    labels = {
        f"{'account' if r.scope == ThrottleScope.ACCOUNT else 'computer'} {r.key} "
        f"({r.failures} failed sign-ins, since {r.locked_at:%Y-%m-%d %H:%M} UTC)": r
        for r in locks
    }
    choice = st.selectbox("Lockout", list(labels), key="us_lock")
    if st.button("Unlock", key="us_unlock_btn"):
        row = labels[choice]
        with factory.begin() as session:
            if row.scope == ThrottleScope.ACCOUNT:
                accounts.unlock(session, username=row.key, actor_id=admin.id)
            else:
                accounts.unlock(session, client=row.key, actor_id=admin.id)
        st.success(f"Unlocked {choice.split(' (')[0]}.")
        st.rerun()


def _add_user(factory, admin: auth.SignedIn) -> None:
    st.subheader("Add a user")
    with st.form("add_user", clear_on_submit=False):
        username = st.text_input("User name", key="us_name")
        role = st.selectbox("Role", [r.value for r in Role], key="us_role")
        password = st.text_input(
            f"Initial password (at least {MIN_PASSWORD_LENGTH} characters, hard to guess)",
            type="password",
            key="us_password",
        )
        add = st.form_submit_button("Add user")
    if add:
        try:
            with factory.begin() as session:
                repository.create_user(session, username, password, role, actor_id=admin.id)
        except ValueError as exc:
            st.error(str(exc))
        else:
            st.success(f"User {username!r} added as {role}.")
            st.rerun()


def _reset_password(factory, admin: auth.SignedIn, others: list[str]) -> None:
    st.subheader("Reset a password")
    shown = st.session_state.pop(state.TEMPORARY_PASSWORD_KEY, None)
    if shown:
        st.success(f"Password of {shown[0]} reset: their sessions ended; they must change it when they sign in.")
        if shown[1]:
            st.caption("Temporary password (shown once):")
            st.code(shown[1], language=None)
    if not others:
        st.caption("No other active accounts.")
        return
    with st.form("reset_password"):
        who = st.selectbox("Account", others, key="us_reset_who")
        given = st.text_input(
            "Temporary password (leave empty to generate one)", type="password", key="us_reset_password"
        )
        reset = st.form_submit_button("Reset password")
    if reset:
        try:
            with factory.begin() as session:
                temporary = accounts.reset_password(session, who, new_password=given or None, actor_id=admin.id)
        except ValueError as exc:
            st.error(str(exc))
            return
        # A generated password is shown once; one the admin typed they know already.
        st.session_state[state.TEMPORARY_PASSWORD_KEY] = (who, None if given else temporary)
        st.rerun()
