"""A fix to Streamlit's script runner, installed when the app starts: a click or key press is not lost when another
rerun request follows it within milliseconds.

The browser asks for a rerun with every widget's state, a button's click or a shortcut key as a one-run trigger. The
script runner takes the request, starts the run and, before it applies the request's widget states and calls their
callbacks, checks for a newer request (``SafeSessionState.on_script_will_rerun`` yields first). If one came in during
that gap it restarts with the newer request alone: the first request's states were never applied, so its trigger,
and the callback it should have run, are gone. The review page meets this all the time: the drawing canvas reports
itself to the server once its picture has loaded, about when a clinician presses the first key on a new image
(measured with a trace of every request: the key's request, then the canvas's 7 ms later, and no grade callback).

The fix applies the states (and runs the callbacks) first; the runner checks for newer requests right after the
callbacks anyway, where an interruption keeps what they did. Installed only where Streamlit still yields at that
point; ``tests/webapp/test_streamlit_fix.py`` shows the trigger surviving and fails when Streamlit changes shape.

It needs ``runner.fastReruns`` off, which :func:`install` sets (``drgnet app`` passes it too). With fast reruns every
request stops the running script runner and starts a new one: a trigger still waiting in the stopped runner is lost
all the same, and with the fix both runners would change the session state at once. Without them one runner takes
each request; a request that comes while a run goes on is folded into the pending one (triggers kept) and stops the
run at its next Streamlit call, so a click is answered as fast.

:func:`install` also turns ``runner.postScriptGC`` off (``drgnet app`` passes that too). Streamlit runs a full
garbage collection after every script run, including a run a page switch ends: with torch and the app's modules in
memory that held the interpreter lock for about 0.4 s (sampled every 10 ms: no thread ran, the browser got nothing),
so opening the review page from the worklist paid it before its run could start. Objects of this app are freed by
reference counting; the collector's own generations still run, and :func:`install` freezes what was loaded up to the
first run (``gc.freeze``) so that those collections do not walk every module object each time.
"""

from __future__ import annotations

import gc
import inspect
from typing import Any

from streamlit import config
from streamlit.runtime.state.safe_session_state import SafeSessionState

#: Streamlit's own method (tests put it back to show the gap).
ORIGINAL = SafeSessionState.on_script_will_rerun


def _apply_then_yield(self: SafeSessionState, fresh_widget_states: Any, **kwargs: Any) -> None:
    with self._lock:
        self._state.on_script_will_rerun(fresh_widget_states, **kwargs)


_apply_then_yield.drgnet_fix = True  # type: ignore[attr-defined]


def install() -> bool:
    """Install the fix; False when this Streamlit does not have the gap the fix closes.

    The app calls it on every script run: only the first call of a process does the work.
    """
    global _installed
    if _installed is None:
        config.set_option("runner.fastReruns", False)
        config.set_option("runner.postScriptGC", False)
        gc.freeze()
        _installed = _patch()
    return _installed


_installed: bool | None = None


def _patch() -> bool:
    current = SafeSessionState.on_script_will_rerun
    if getattr(current, "drgnet_fix", False):
        return True
    source = inspect.getsource(current)
    if "self._yield_callback()" not in source or "self._state.on_script_will_rerun(" not in source:
        return False
    SafeSessionState.on_script_will_rerun = _apply_then_yield  # type: ignore[method-assign]
    return True
