"""The script runner fix (webapp/streamlit_fix.py): a click is applied although a newer rerun request is already
waiting when the run that carries the click starts.

(The widget has no callback here: calling one needs a whole script-run context. Streamlit calls the callbacks of the
states it applies, in the same call; the browser tests show the callbacks running.)"""

from __future__ import annotations

import gc
import inspect

import pytest
from streamlit import config
from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
from streamlit.runtime.state.common import WidgetMetadata
from streamlit.runtime.state.safe_session_state import SafeSessionState
from streamlit.runtime.state.session_state import SessionState

from webapp import streamlit_fix


def _click_with_a_newer_request_waiting() -> SafeSessionState:
    waiting = []

    def check_requests() -> None:  # the runner's check: raises when another rerun was asked for meanwhile
        if waiting:
            raise RerunException(RerunData())

    state = SafeSessionState(SessionState(), yield_callback=check_requests)
    button = WidgetMetadata(
        id="$$ID-save",
        deserializer=lambda v: bool(v),
        serializer=bool,
        value_type="trigger_value",
    )
    state.register_widget(button, user_key="save")
    states = WidgetStates()
    clicked = states.widgets.add()
    clicked.id = "$$ID-save"
    clicked.trigger_value = True
    waiting.append("the canvas's report")  # the next request arrives as the run with the click starts
    state.on_script_will_rerun(states)
    waiting.clear()  # (reading the state is a check too)
    return state


def test_streamlit_drops_the_click_without_the_fix(monkeypatch):
    monkeypatch.setattr(SafeSessionState, "on_script_will_rerun", streamlit_fix.ORIGINAL)  # (an app test installed it)
    with pytest.raises(RerunException):  # the run restarts with the newer request's states: the click is gone
        _click_with_a_newer_request_waiting()


def test_the_fix_applies_the_click_first(monkeypatch):
    monkeypatch.setattr(SafeSessionState, "on_script_will_rerun", streamlit_fix.ORIGINAL)
    monkeypatch.setattr(streamlit_fix, "_installed", None)  # as in a fresh app process
    fast, post_gc = config.get_option("runner.fastReruns"), config.get_option("runner.postScriptGC")
    assert streamlit_fix.install(), "this Streamlit changed shape: check webapp/streamlit_fix.py against it"
    assert streamlit_fix.install()  # once only
    try:
        assert config.get_option("runner.fastReruns") is False  # one script runner per session (see the module)
        assert config.get_option("runner.postScriptGC") is False  # no 0.4 s full collection after every run
        assert gc.get_freeze_count() > 0  # what was loaded so far is out of the collector's way
    finally:
        config.set_option("runner.fastReruns", fast)
        config.set_option("runner.postScriptGC", post_gc)
        gc.unfreeze()
    state = _click_with_a_newer_request_waiting()
    assert state["save"] is True  # applied; the runner's next check restarts the run after this


def test_streamlit_still_collects_after_a_run_unless_told_not_to():
    """The option install() turns off is the one Streamlit's runner reads before its full collection."""
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

    source = inspect.getsource(ScriptRunner._on_script_finished)
    assert 'config.get_option("runner.postScriptGC")' in source and "gc.collect(2)" in source
