"""The sign-in form: all an unauthenticated visitor ever sees."""

from __future__ import annotations

import streamlit as st

from webapp import auth, state


def login_page() -> None:
    st.title("DRG-Net review")
    st.caption("Diabetic retinopathy grading and lesion review. Sign in with your account.")
    notice = st.session_state.pop(state.NOTICE_KEY, None)
    if notice:
        st.info(notice)
    with st.form("login"):
        username = st.text_input("User name", key="login_username")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        result = auth.login(username, password)
        if result.user is None:
            st.error(result.message or "Wrong user name or password, or the account is disabled.")
        else:
            st.rerun()
