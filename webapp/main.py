"""Entry point of the review app: ``streamlit run webapp/main.py`` (or ``drgnet app``).

The router decides who sees what: a visitor who is not signed in gets the sign-in form and nothing else, a user whose
password an admin reset gets only the change-password page, clinicians get the review pages, and only admins get the
Models and Users pages registered at all (each of those pages checks the role again itself; the page table is
:data:`webapp.nav.PAGES`). Sessions survive a browser refresh through a cookie (see webapp/auth.py).
"""

from __future__ import annotations

import streamlit as st

from webapp import auth, nav, state, streamlit_fix


def _run(pages: list[st.Page] | dict[str, list[st.Page]], **kwargs: str) -> None:
    registered = pages if isinstance(pages, list) else [p for section in pages.values() for p in section]
    state.set_pages(registered)
    navigation = st.navigation(pages, **kwargs)
    state.follow_pending_page()
    navigation.run()


def main() -> None:
    st.set_page_config(page_title="DRG-Net review", page_icon=":material/visibility:", layout="wide")
    user = auth.current_user()
    if user is None:
        auth.write_cookie()  # removes a stale session cookie
        _run([nav.LOGIN.page()], position="hidden")
        return
    with st.sidebar:
        st.caption(f"Signed in as **{user.username}** ({user.role})")
        st.button("Sign out", key="logout", on_click=auth.logout)
        auth.write_cookie()
        auth.watch_session()
    if user.must_change_password:  # after an admin's reset: nothing else until the password is changed
        _run([nav.BY_NAME["account"].page()], position="hidden")
        return
    _run({section: [spec.page() for spec in specs] for section, specs in nav.sections_for(user.role).items()})


streamlit_fix.install()
main()
