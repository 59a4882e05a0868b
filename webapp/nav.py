"""The app's pages, built the same way everywhere so ``st.switch_page`` finds them by their URL path."""

from __future__ import annotations

import streamlit as st

from webapp.views.account import account_page
from webapp.views.dashboard import dashboard_page
from webapp.views.login import login_page
from webapp.views.models import models_page
from webapp.views.review import review_page
from webapp.views.upload import upload_page
from webapp.views.users import users_page
from webapp.views.worklist import worklist_page

#: url_path -> (page function, title, icon, admin only)
PAGES = {
    "worklist": (worklist_page, "Worklist", ":material/list:", False),
    "review": (review_page, "Review", ":material/visibility:", False),
    "upload": (upload_page, "Upload", ":material/upload:", False),
    "dashboard": (dashboard_page, "Dashboard", ":material/monitoring:", False),
    "account": (account_page, "Password", ":material/key:", False),
    "models": (models_page, "Models", ":material/model_training:", True),
    "users": (users_page, "Users", ":material/group:", True),
}


def page(name: str) -> st.Page:
    func, title, icon, _ = PAGES[name]
    return st.Page(func, title=title, icon=icon, url_path=name, default=name == "worklist")


def login() -> st.Page:
    return st.Page(login_page, title="Sign in", url_path="login", default=True)


def switch_to(name: str) -> None:
    st.switch_page(page(name))
