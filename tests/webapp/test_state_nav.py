"""Page switching through webapp.state: the router registers its pages, pages switch by name without importing it."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from db.models import Role
from webapp import nav

MAIN = str(Path(__file__).resolve().parents[2] / "webapp" / "main.py")
TIMEOUT = 120


def _sign_in(name: str, password: str) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    at.text_input(key="login_username").input(name)
    at.text_input(key="login_password").input(password)
    return at.button[0].click().run()


def test_the_worklist_opens_the_review_page_through_the_router(app_env, passwords):
    at = _sign_in("clinician", passwords["clinician"])
    first = at.session_state["worklist_ids"][0]
    at.button(key="wl_start").click().run()
    assert not at.exception, at.exception
    assert at.session_state["review_image_id"] == first
    assert at.title[0].value.startswith("Review: ")


def test_a_page_the_router_did_not_register_is_refused_by_name(app_env, passwords):
    def switch_to_models() -> None:
        import streamlit as st

        from webapp import state

        st.session_state["router_pages"] = {}  # what a clinician's router registered of the admin pages
        try:
            state.switch_to("models")
        except KeyError as exc:
            st.write(str(exc))

    at = AppTest.from_function(switch_to_models, default_timeout=TIMEOUT).run()
    assert "page 'models' is not open to this user" in at.markdown[0].value


def test_the_page_table_gives_admin_pages_to_admins_only():
    clinician = [spec.name for specs in nav.sections_for(Role.CLINICIAN).values() for spec in specs]
    admin = {section: [spec.name for spec in specs] for section, specs in nav.sections_for(Role.ADMIN).items()}
    assert clinician == ["worklist", "review", "upload", "dashboard", "account"]
    assert admin == {"Review": clinician, "Administration": ["models", "users"]}
    assert set(nav.BY_NAME) == {spec.name for spec in nav.PAGES}
