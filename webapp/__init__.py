"""The clinician review app (Streamlit). Pages call db/ and feedback/ functions only.

- :mod:`webapp.main`: the router (who sees which pages); :mod:`webapp.nav`: its page table of ``PageSpec`` rows.
- :mod:`webapp.state`: every session key that outlives a page run, and switching pages by name.
- :mod:`webapp.views`: one module per page; pages import :mod:`webapp.state`, never the router.
- :mod:`webapp.auth`: sign-in, sessions, roles. :mod:`webapp.services`: what pages share (database, model, pictures).
"""
