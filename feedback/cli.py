"""``drgnet worker``, ``drgnet retrain`` and ``drgnet model ...``: learning from corrections on the command line.

Registered through the ``drgnet.commands`` entry points (pyproject.toml), because ``drgnet`` itself must not import
this package (DESIGN.md §2). Heavy imports (torch, SQLAlchemy) happen inside the commands.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from db.cli_support import URL_HELP, command_group, fail, operated_engine
from feedback.worker_limits import DEFAULT_LEASE_S, DEFAULT_POLL_S, DEFAULT_TIME_LIMIT_S

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

DATA_HELP = "Data directory: photographs, artifacts, models (default: $DRGNET_DATA_DIR, else ./data)."

model_app = command_group(
    "model", "Model versions: list, register, approve or reject, promote, roll back; hold-outs; settings."
)
holdout_app = command_group("holdout", "Frozen hold-outs the retraining gate judges on, and healthy replay sets.")
model_app.add_typer(holdout_app)


@contextmanager
def _database(url: str | None, data_dir: Path | None = None) -> Iterator[sessionmaker[Session]]:
    """A session factory on a reachable database migrated to head; errors become messages a user can act on.

    Without a URL (and no ``DRGNET_DATABASE_URL``) the SQLite file of ``data_dir`` is used.
    """
    from db.engine import make_sessionmaker

    with operated_engine(url, data_dir) as engine:
        yield make_sessionmaker(engine)


@contextmanager
def _change(
    url: str | None, data_dir: Path | None = None, refused: tuple[type[Exception], ...] = (ValueError,)
) -> Iterator[Session]:
    """One transaction of a command that changes the database; a ``refused`` error ends it with its message."""
    with _database(url, data_dir) as Session, Session.begin() as session:  # noqa: N806
        try:
            yield session
        except refused as exc:
            fail(str(exc))


def _params(pairs: list[str], config: Path | None) -> dict[str, Any]:
    """Retraining settings from a settings file (JSON, or TOML by suffix: drgnet's reader) and ``--set
    key.path=value`` pairs (drgnet's parser); only the settings named, so a job's params override a worker's."""
    from drgnet.config import dotted_settings, read_settings
    from feedback.retrain import RetrainConfig

    try:
        params = dotted_settings(read_settings(config)) if config is not None else {}
        params.update(RetrainConfig.parse_settings(pairs))
    except ValueError as exc:
        fail(str(exc))
    return params


def worker(
    once: bool = typer.Option(False, "--once", help="Run at most one job, then exit."),
    poll: float = typer.Option(DEFAULT_POLL_S, "--poll", min=0.1, help="Seconds between looks at an empty queue."),
    lease: float = typer.Option(
        DEFAULT_LEASE_S, "--lease", min=1.0, help="Job lease in seconds (renewed only while the job makes progress)."
    ),
    time_limit: float = typer.Option(
        DEFAULT_TIME_LIMIT_S,
        "--time-limit",
        min=1.0,
        help="Seconds one attempt of a job may run (jobs queued without one).",
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Retraining settings file, JSON or TOML by suffix (e.g. holdout, steps); job params override it.",
    ),
    settings: list[str] = typer.Option(
        [], "--set", help="A retraining setting KEY.PATH=VALUE (repeatable), e.g. steps=100 or loss.gce_q=0.5."
    ),
    worker_id: str | None = typer.Option(None, "--id", help="Worker name in the jobs table (default host:pid)."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    data_dir: Path | None = typer.Option(None, "--data-dir", envvar="DRGNET_DATA_DIR", help=DATA_HELP),
) -> None:
    """Run background jobs (retraining) from the database; several workers may run at once."""
    from feedback.retrain import RetrainConfig
    from feedback.worker import Worker, default_worker_id

    try:
        base = RetrainConfig.from_params(_params(settings, config))
    except ValueError as exc:
        fail(str(exc))
    with _database(url, data_dir) as Session:  # noqa: N806
        w = Worker(
            Session, data_dir, worker_id or default_worker_id(), lease_s=lease, time_limit_s=time_limit, retrain=base
        )
        if once:
            job = w.run_once()
            if job is None:
                typer.echo("no job waiting")
            elif job.status.value == "failed":
                raise typer.Exit(code=1)
            return
        typer.echo(f"worker {w.worker_id}: waiting for jobs (Ctrl-C stops)")
        try:
            w.run_forever(poll)
        except KeyboardInterrupt:
            typer.echo("stopped")


def retrain(
    config: Path | None = typer.Option(
        None, "--config", help="Retraining settings file, JSON or TOML by suffix (e.g. holdout, steps)."
    ),
    settings: list[str] = typer.Option(
        [], "--set", help="A retraining setting KEY.PATH=VALUE (repeatable), e.g. steps=100 or loss.gce_q=0.5."
    ),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Queue a retraining job on all corrections (a worker runs it: drgnet worker)."""
    from feedback.jobs import queue_retraining

    params = _params(settings, config)
    with _change(url) as session:
        job = queue_retraining(session, None, params)
        typer.echo(f"retraining job {job.id} is {job.status.value}")


@model_app.command("list")
def model_list(url: str | None = typer.Option(None, "--url", help=URL_HELP)) -> None:
    """All model versions, oldest first, with status and hold-out QWK."""
    from db import repository

    with _database(url) as Session, Session() as session:  # noqa: N806
        versions = repository.list_model_versions(session)
        if not versions:
            typer.echo("no model versions; register one with: drgnet model register CKPT --name NAME --activate")
        for v in versions:
            holdout = (v.metrics or {}).get("holdout") or {}
            scores = "  ".join(
                f"{name}: QWK {m.get('qwk') if m.get('qwk') is None else round(m['qwk'], 3)}"
                for name, m in holdout.items()
            )
            parent = f" <- {v.parent.name}" if v.parent is not None else ""
            typer.echo(f"{v.id:4d}  {v.status.value:9s}  {v.name}{parent}  {scores}")


@model_app.command("register")
def model_register(
    checkpoint: Path = typer.Argument(..., help="Checkpoint folder (e.g. data/demo-model/best)."),
    name: str = typer.Option(..., "--name", help="Version name."),
    activate: bool = typer.Option(False, "--activate", help="Also make it the active version."),
    replay_data: str = typer.Option("", "--replay-data", help="Labelled folder it was trained on (replayed later)."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    data_dir: Path | None = typer.Option(None, "--data-dir", envvar="DRGNET_DATA_DIR", help=DATA_HELP),
) -> None:
    """Register a trained checkpoint as a model version."""
    from feedback.retrain import register_checkpoint

    with _change(url, data_dir) as session:
        v = register_checkpoint(
            session, checkpoint, name, data_dir=data_dir, activate=activate, replay_data=replay_data
        )
        typer.echo(f"registered {v.name!r} (id {v.id}) as {v.status.value}")


@model_app.command("promote")
def model_promote(
    name: str = typer.Argument(..., help="Version name."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Make a version the active one (the previous active version is retired)."""
    from db import repository

    with _change(url) as session:
        v = _version(session, name)
        repository.promote_model_version(session, v.id, reason="drgnet model promote")
        typer.echo(f"{name!r} is active")


@model_app.command("rollback")
def model_rollback(url: str | None = typer.Option(None, "--url", help=URL_HELP)) -> None:
    """Reject the active version and re-activate the one active before it."""
    from db import repository

    with _change(url) as session:
        v = repository.rollback_model_version(session, reason="drgnet model rollback")
        typer.echo(f"rolled back: {v.name!r} is active again")


def _version(session: Any, name: str) -> Any:
    from db import repository

    version = repository.get_model_version_by_name(session, name)
    if version is None:
        fail(f"no model version called {name!r}; see drgnet model list")
    return version


def _gate_summary(version: Any) -> list[str]:
    metrics = version.metrics or {}
    lines = []
    held = (metrics.get("holdout_set") or {}).get("name")
    if held:
        lines.append(f"hold-out {held!r}: {metrics['holdout_set'].get('n_images')} photographs")
    lines += [f"  {r}" for r in (metrics.get("gate") or {}).get("reasons", [])]
    return lines


@model_app.command("approve")
def model_approve(
    name: str = typer.Argument(..., help="Version name (awaiting approval)."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the audit log with your OS user name)."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Approve a version that passed the gate: it becomes the active one."""
    from db import repository

    with _change(url, refused=(ValueError, PermissionError)) as session:
        v = _version(session, name)
        for line in _gate_summary(v):
            typer.echo(line)
        repository.approve_model_version(session, v.id, actor_id=None, reason=reason)
        typer.echo(f"approved: {name!r} is active")


@model_app.command("reject")
def model_reject(
    name: str = typer.Argument(..., help="Version name (a candidate or awaiting approval)."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the audit log with your OS user name)."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Reject a candidate version; it stays loadable for comparison but can never become active."""
    from db import repository

    with _change(url, refused=(ValueError, PermissionError)) as session:
        v = _version(session, name)
        repository.reject_model_version(session, v.id, actor_id=None, reason=reason)
        typer.echo(f"rejected: {name!r}")


@model_app.command("settings")
def model_settings(
    changes: list[str] = typer.Option([], "--set", help="KEY=VALUE (repeatable), e.g. auto_promote=false."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Show the run-time settings (automatic promotion, clinician uploads, annotators for automatic retraining),
    or change them (audited with your OS user name)."""
    from feedback import settings

    with _database(url) as Session, Session.begin() as session:  # noqa: N806
        for pair in changes:
            key, sep, raw = pair.partition("=")
            setting = settings.SETTINGS.get(key.strip())
            if not sep or setting is None:
                fail(f"--set {pair!r}: write KEY=VALUE with KEY one of {', '.join(settings.SETTINGS)}")
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                fail(f"--set {pair!r}: the value must be true, false or a number")
            try:
                settings.change(session, setting, value, actor_id=None)
            except (ValueError, PermissionError) as exc:
                fail(str(exc))
        for setting in settings.SETTINGS.values():
            typer.echo(f"{setting.key} = {json.dumps(settings.get(session, setting))}  ({setting.help})")


@holdout_app.command("register")
def holdout_register(
    name: str = typer.Argument(..., help="A new name: hold-outs are frozen, a changed set gets a new name."),
    folder: Path = typer.Argument(..., help="Labelled folder (IDRiD, DDR, FGADR, CSV, synthetic layouts)."),
    layout: str = typer.Option("auto", "--layout", help="The folder's dataset layout."),
    purpose: str = typer.Option(
        "holdout", "--purpose", metavar="holdout|healthy-replay", help="The gate's hold-out, or healthy replay."
    ),
    source: str | None = typer.Option(None, "--source", help="Camera or site of every photograph."),
    assume_healthy: bool = typer.Option(
        False, "--assume-healthy", help="Healthy replay from an unlabelled folder: every photograph is grade 0."
    ),
    description: str | None = typer.Option(None, "--description", help="What the set is (shown to admins)."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    data_dir: Path | None = typer.Option(None, "--data-dir", envvar="DRGNET_DATA_DIR", help=DATA_HELP),
) -> None:
    """Register a labelled folder as a frozen set: its photographs are stored (never in the worklist) and checked
    (a hold-out must hold every grade and healthy photographs)."""
    from feedback import holdouts

    with _change(url, data_dir, refused=(ValueError, OSError)) as session:
        h = holdouts.register_folder(
            session,
            name,
            folder,
            layout=layout,
            purpose=purpose,
            source=source,
            assume_healthy=assume_healthy,
            description=description,
            data_dir=data_dir,
        )
        typer.echo(
            f"registered {h.purpose.value} {h.name!r}: {h.n_images} photographs, grades {h.grade_counts}, "
            f"digest {h.digest[:12]}..."
        )


@holdout_app.command("list")
def holdout_list(url: str | None = typer.Option(None, "--url", help=URL_HELP)) -> None:
    """Registered hold-outs and healthy replay sets."""
    from db import repository

    with _database(url) as Session, Session() as session:  # noqa: N806
        rows = repository.list_holdouts(session)
        if not rows:
            typer.echo("no hold-out registered: drgnet model holdout register NAME FOLDER")
        for h in rows:
            typer.echo(
                f"{h.id:4d}  {h.purpose.value:14s}  {h.name}  {h.n_images} photographs  grades {h.grade_counts}  "
                f"{h.created_at:%Y-%m-%d %H:%M}"
            )
