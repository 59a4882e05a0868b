"""The router's page table: each page as a :class:`PageSpec`, built the same way on every run.

Only the router (:mod:`webapp.main`) imports this module; pages switch through :func:`webapp.state.switch_to`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from db.models import Role
from webapp.views.account import account_page
from webapp.views.dashboard import dashboard_page
from webapp.views.login import login_page
from webapp.views.models import models_page
from webapp.views.review import review_page
from webapp.views.upload import upload_page
from webapp.views.users import users_page
from webapp.views.worklist import worklist_page

EVERYONE = frozenset(Role)
ADMINS = frozenset({Role.ADMIN})


@dataclass(frozen=True)
class PageSpec:
    """One page of the app: what the router registers and whom it shows the page to."""

    name: str  # the url path, and the name pages switch to
    title: str
    icon: str | None
    function: Callable[[], None]
    roles: frozenset[Role] = EVERYONE  # the page checks the role again itself
    section: str = "Review"  # the sidebar group
    default: bool = False

    def page(self) -> st.Page:
        """The ``st.Page`` of this spec (equal specs give pages ``st.switch_page`` treats as the same)."""
        return st.Page(self.function, title=self.title, icon=self.icon, url_path=self.name, default=self.default)


PAGES = (
    PageSpec("worklist", "Worklist", ":material/list:", worklist_page, default=True),
    PageSpec("review", "Review", ":material/visibility:", review_page),
    PageSpec("upload", "Upload", ":material/upload:", upload_page),
    PageSpec("dashboard", "Dashboard", ":material/monitoring:", dashboard_page),
    PageSpec("account", "Password", ":material/key:", account_page),
    PageSpec("models", "Models", ":material/model_training:", models_page, ADMINS, "Administration"),
    PageSpec("users", "Users", ":material/group:", users_page, ADMINS, "Administration"),
)
LOGIN = PageSpec("login", "Sign in", None, login_page, frozenset(), default=True)
BY_NAME = {spec.name: spec for spec in PAGES}


def sections_for(role: str) -> dict[str, list[PageSpec]]:
    """The pages ``role`` may open, by sidebar section, in table order."""
    sections: dict[str, list[PageSpec]] = {}
    for spec in PAGES:
        if Role(role) in spec.roles:
            sections.setdefault(spec.section, []).append(spec)
    return sections
