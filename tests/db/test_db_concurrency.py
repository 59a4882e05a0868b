"""Several processes at once: no lost annotations or audit entries, and no job claimed twice."""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter, defaultdict

import _support_db_workers
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db import repository as repo
from db.models import Annotation, AuditEntry, Job, JobStatus

SPAWN = mp.get_context("spawn")


def _run(target, args_per_process: list[tuple], timeout: float = 90) -> list:
    barrier = SPAWN.Barrier(len(args_per_process))
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=(*args[:1], barrier, *args[1:], results)) for args in args_per_process]
    for p in procs:
        p.start()
    out = [results.get(timeout=timeout) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0, f"worker process exited with {p.exitcode}"
    return out


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_eight_processes_writing_annotations_lose_nothing(db_url: str, Session: sessionmaker[Session]):
    with Session.begin() as session:
        annotators = [repo.create_user(session, f"doc{i}", f"doc{i}-quiet-harbour-7", "clinician").id for i in range(4)]
        images = [
            repo.add_image(session, sha256=f"{i:064x}", path="p", original_filename="x", width=1, height=1)[0].id
            for i in range(1, 6)
        ]
    # Two processes per annotator, all on the same five images: the previous-annotation chains are contended.
    results = _run(_support_db_workers.annotate, [(db_url, annotators[i % 4], images, 50) for i in range(8)])
    assert sorted(r[1] for r in results) == [50] * 8

    with Session() as session:
        rows = session.execute(
            select(Annotation.id, Annotation.image_id, Annotation.annotator_id, Annotation.previous_id)
        ).all()
        assert len(rows) == 400
        audited = session.scalars(select(AuditEntry.object_id).where(AuditEntry.action == "annotation.add")).all()
        assert sorted(audited) == sorted(r.id for r in rows)
    # Each annotator's annotations of an image form one unbroken chain, oldest first.
    chains: dict[tuple[int, int], list] = defaultdict(list)
    for row in sorted(rows):
        chains[(row.image_id, row.annotator_id)].append(row)
    assert len(chains) == 20
    for chain in chains.values():
        assert [r.previous_id for r in chain] == [None] + [r.id for r in chain[:-1]]


@pytest.mark.parametrize("db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_four_workers_never_claim_the_same_job(db_url: str, Session: sessionmaker[Session]):
    with Session.begin() as session:
        job_ids = [repo.enqueue_job(session, "screen", {"batch": i}).id for i in range(40)]
    results = _run(_support_db_workers.claim_all, [(db_url, f"worker-{i}") for i in range(4)])

    claims = Counter(job_id for _, claimed in results for job_id in claimed)
    assert sorted(claims) == job_ids and set(claims.values()) == {1}
    with Session() as session:
        jobs = session.scalars(select(Job)).all()
        assert {j.status for j in jobs} == {JobStatus.DONE} and {j.attempts for j in jobs} == {1}
        by_worker = {worker: set(claimed) for worker, claimed in results}
        assert all(j.id in by_worker[j.result["by"]] for j in jobs)
        n_claim_audits = session.scalar(select(func.count()).where(AuditEntry.action == "job.claim"))
        assert n_claim_audits == 40
