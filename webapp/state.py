"""What a browser session keeps between page runs: every ``st.session_state`` key of the app, and page switching.

Pages switch by name with :func:`switch_to`. The router (:mod:`webapp.main`, with its page table in
:mod:`webapp.nav`) registers the pages it built for this run with :func:`set_pages`, so a page never imports the
router: the router imports every page, and both import this module.

Widget keys (``wl_strategy``, ``rv_grade_<image id>`` ...) belong to the page that draws the widget; the keys here
are the ones that carry something from one page or one run to another.
"""

from __future__ import annotations

from collections.abc import Iterable

import streamlit as st

#: The signed-in :class:`webapp.auth.SignedIn` (id, name, role; never an ORM object, never the password).
USER_KEY = "user"
#: Id of this browser's row in ``user_sessions``; absent only where a test put a user in the state directly.
SESSION_KEY = "auth_session"
#: The token to keep in the browser's cookie while signed in.
TOKEN_KEY = "auth_token"
#: Why the last session ended, shown once on the sign-in form.
NOTICE_KEY = "auth_notice"
#: Set at sign-out: the browser's cookie is removed on the next page run.
FORGET_KEY = "auth_forget_cookie"
#: The stale token this browser session already reported as signed out (the notice is shown once).
STALE_KEY = "auth_stale_token"
#: Page runs of this browser session, so each run's idle timer script differs and the browser re-arms it.
PAGE_RUNS_KEY = "auth_page_runs"

#: Image ids in the order the worklist showed them: the review page's "Previous" / "Next" walk this list.
ORDER_KEY = "worklist_ids"
#: The image the review page shows.
REVIEW_KEY = "review_image_id"
#: One-time message after a save, shown on the next image.
FLASH_KEY = "review_flash"
#: Unsaved corrections per (user, image) while the review page is open (also kept in the database).
DRAFTS_KEY = "review_drafts"
#: Images this browser session saved an annotation for (the grader's counter).
COUNTER_KEY = "reviewed_count"
#: Set when storing the draft failed (the draft is still in this session).
ERROR_KEY = "review_draft_error"
#: Why the last save failed (the draft is kept), shown once above the form.
SAVE_ERROR_KEY = "review_save_error"

#: Set after a password change, so the next run confirms it once.
PASSWORD_CHANGED_KEY = "acc_changed"
#: (account, temporary password or None) after an admin's reset, shown once.
TEMPORARY_PASSWORD_KEY = "us_temporary"
#: The outcome of each file of the last upload, kept for the page's reruns.
UPLOAD_OUTCOMES_KEY = "up_outcomes"

#: url path -> ``st.Page`` the router registered in this run.
_PAGES_KEY = "router_pages"
#: A page a callback asked for; the router switches to it before drawing the page the run was asked for.
_PENDING_PAGE_KEY = "router_pending_page"


def set_pages(pages: Iterable[st.Page]) -> None:
    """Remember the pages the router registered in this run, so :func:`switch_to` finds them by name."""
    st.session_state[_PAGES_KEY] = {page.url_path: page for page in pages}


def switch_to(name: str) -> None:
    """Switch to the page whose url path is ``name`` (stops this run).

    Raises:
        KeyError: the router did not register that page for this user (an admin page for a clinician ...).
    """
    pages = st.session_state.get(_PAGES_KEY) or {}
    if name not in pages:
        raise KeyError(f"page {name!r} is not open to this user; open pages: {', '.join(sorted(pages)) or 'none'}")
    st.switch_page(pages[name])


def open_review_next(image_id: int) -> None:
    """Callback of an "Open" button: the review page of ``image_id`` is the next run's page.

    The page the click came from is not drawn again first (the worklist's queue query and rows cost a good part of
    a second on 2 cores), and the click cannot be lost to a rerun that stops the page before its button is read.
    """
    st.session_state[REVIEW_KEY] = image_id
    st.session_state[_PENDING_PAGE_KEY] = "review"


def follow_pending_page() -> None:
    """Switch to the page a callback asked for, if any (the router calls it before it runs a page)."""
    name = st.session_state.pop(_PENDING_PAGE_KEY, None)
    if name is not None:
        switch_to(name)
