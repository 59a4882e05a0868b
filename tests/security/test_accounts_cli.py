"""``drgnet user add`` refuses weak passwords; ``drgnet user unlock`` and ``reset-password`` work."""

from __future__ import annotations

import re
import time

import pytest
from typer.testing import CliRunner

from db import accounts, migrate
from db import repository as repo
from db.cli import user_app
from db.engine import make_engine, make_sessionmaker

runner = CliRunner()


@pytest.fixture
def factory(db_url: str):
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.mark.parametrize("weak", ["password", "12345678", "password1234", "qwertyuiopas"])
def test_user_add_refuses_weak_passwords(db_url, factory, weak):
    result = runner.invoke(
        user_app, ["add", "ana", "--role", "admin", "--password-stdin", "--url", db_url], input=weak + "\n"
    )
    assert result.exit_code == 2 and ("too short" in result.output or "too easy to guess" in result.output)
    assert weak not in result.output.replace("error: password", "")
    with factory() as s:
        assert repo.get_user(s, "ana") is None


def test_unlock_and_reset_password(db_url, factory):
    ok = runner.invoke(
        user_app,
        ["add", "ana", "--role", "clinician", "--password-stdin", "--url", db_url],
        input="mauve-otter-quietly-42\n",
    )
    assert ok.exit_code == 0, ok.output
    policy = accounts.AccountPolicy(account_lockout=2, base_delay_s=0.001)
    for i in range(2):
        with factory.begin() as s:
            accounts.sign_in(s, "ana", f"wrong-{i}", client="10.0.0.9", policy=policy)
        time.sleep(0.01)  # past the (tiny) delay, so the second attempt is looked at
    listing = runner.invoke(user_app, ["list", "--url", db_url])
    assert "locked" in listing.output.splitlines()[0]

    assert runner.invoke(user_app, ["unlock", "--url", db_url]).exit_code == 2  # neither name nor client
    result = runner.invoke(user_app, ["unlock", "ana", "--url", db_url])
    assert result.exit_code == 0 and "ana: unlocked" in result.output
    with factory.begin() as s:
        assert accounts.sign_in(s, "ana", "mauve-otter-quietly-42", policy=policy).user is not None

    result = runner.invoke(user_app, ["reset-password", "ana", "--url", db_url])
    assert result.exit_code == 0, result.output
    temporary = re.search(r"next sign-in\): (\S+)", result.output).group(1)
    assert "must-change-password" in runner.invoke(user_app, ["list", "--url", db_url]).output
    with factory.begin() as s:
        signed = accounts.sign_in(s, "ana", temporary, policy=policy).user
        assert signed is not None and signed.must_change_password
        actions = [e.action for e in repo.audit_entries(s)]
    assert {"user.lockout", "user.unlock", "user.password_reset"} <= set(actions)

    weak = runner.invoke(user_app, ["reset-password", "ana", "--password-stdin", "--url", db_url], input="12345678\n")
    assert weak.exit_code == 2 and "too short" in weak.output
    assert runner.invoke(user_app, ["reset-password", "zed", "--url", db_url]).exit_code == 2
