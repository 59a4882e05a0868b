"""The sign-in form: all an unauthenticated visitor ever sees."""

from __future__ import annotations

import streamlit as st

from webapp import auth


def login_page() -> None:
    st.title("DRG-Net review")
    st.caption("Diabetic retinopathy grading and lesion review. Sign in with your account.")
    with st.form("login"):
        username = st.text_input("User name", key="login_username")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        if auth.login(username, password) is None:
            st.error("Wrong user name or password, or the account is disabled.")
        else:
            st.rerun()
