"""Users (admins only): add accounts, disable them."""

from __future__ import annotations

import streamlit as st

from db import repository
from db.models import Role
from webapp import auth
from webapp.services import sessions


def users_page() -> None:
    admin = auth.require_admin()
    st.title("Users")
    factory = sessions()
    with factory() as session:
        users = repository.list_users(session)
        table = {
            "User": [u.username for u in users],
            "Role": [u.role.value for u in users],
            "Active": [u.active for u in users],
            "Created": [u.created_at.strftime("%Y-%m-%d %H:%M") for u in users],
        }
    st.dataframe(table, hide_index=True, width="stretch")

    st.subheader("Add a user")
    with st.form("add_user", clear_on_submit=False):
        username = st.text_input("User name", key="us_name")
        role = st.selectbox("Role", [r.value for r in Role], key="us_role")
        password = st.text_input("Initial password (at least 8 characters)", type="password", key="us_password")
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

    st.subheader("Disable a user")
    others = [u.username for u in users if u.active and u.id != admin.id]
    if not others:
        st.caption("No other active accounts.")
        return
    who = st.selectbox("Account", others, key="us_disable")
    if st.button("Disable", key="us_disable_btn"):
        with factory.begin() as session:
            repository.disable_user(session, who, actor_id=admin.id)
        st.success(f"{who} can no longer sign in; their annotations stay.")
        st.rerun()
