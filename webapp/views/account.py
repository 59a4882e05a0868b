"""Your account: change your own password (the only page shown after an admin reset it)."""

from __future__ import annotations

import streamlit as st

from db import accounts
from db.passwords import MIN_PASSWORD_LENGTH
from webapp import auth, state
from webapp.services import sessions


def account_page() -> None:
    user = auth.require_user()
    st.title("Change password")
    changed_notice()
    if user.must_change_password:
        st.warning("An administrator reset your password: choose a new one to continue.")
    st.caption(
        f"At least {MIN_PASSWORD_LENGTH} characters and hard to guess: a few uncommon words, or a long random phrase. "
        "Changing it signs you out everywhere else."
    )
    with st.form("change_password", clear_on_submit=True):
        current = st.text_input("Current password", type="password", key="acc_current")
        new = st.text_input("New password", type="password", key="acc_new")
        again = st.text_input("New password again", type="password", key="acc_again")
        submitted = st.form_submit_button("Change password", type="primary")
    if not submitted:
        return
    if new != again:
        st.error("The two new passwords differ.")
        return
    error = None
    with sessions().begin() as session:
        try:
            accounts.change_password(
                session, user.id, current, new, keep_session=st.session_state.get(state.SESSION_KEY)
            )
        except ValueError as exc:  # caught inside the transaction: a wrong current password is still counted
            error = str(exc)
    if error is not None:
        st.error(f"Not changed: {error}.")
        return
    st.session_state[state.PASSWORD_CHANGED_KEY] = True
    st.rerun()  # the router reads the cleared must-change flag and shows every page again


def changed_notice() -> None:
    """A one-time confirmation after a change (the page rerun clears the form)."""
    if st.session_state.pop(state.PASSWORD_CHANGED_KEY, False):
        st.success("Password changed.")
