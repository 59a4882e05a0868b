"""Sign-in state of one browser session.

Only the user's id, name and role live in ``st.session_state`` (never an ORM object, never the password). Each page
run re-reads the account, so a user an admin disables is signed out on their next click.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from db import repository
from db.models import Role
from webapp.services import sessions

USER_KEY = "user"


@dataclass(frozen=True)
class SignedIn:
    id: int
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value


def current_user() -> SignedIn | None:
    """The signed-in user, or None (also when the account was disabled or removed since signing in)."""
    user = st.session_state.get(USER_KEY)
    if user is None:
        return None
    with sessions()() as session:
        row = repository.get_user_by_id(session, user.id)
        if row is None or not row.active:
            logout()
            return None
        if row.role.value != user.role:  # an admin changed the role: the new one applies now
            user = SignedIn(row.id, row.username, row.role.value)
            st.session_state[USER_KEY] = user
    return user


def login(username: str, password: str) -> SignedIn | None:
    """Check the credentials against the database and start the session; None when they are wrong."""
    with sessions().begin() as session:
        row = repository.verify_password(session, username.strip(), password)
        if row is None:
            return None
        user = SignedIn(row.id, row.username, row.role.value)
    st.session_state.clear()
    st.session_state[USER_KEY] = user
    return user


def logout() -> None:
    """End the session: everything this browser session held is dropped."""
    st.session_state.clear()


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
