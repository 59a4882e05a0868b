"""Process entry points of the concurrency tests (importable by name, as multiprocessing's spawn needs)."""

from __future__ import annotations

from typing import Any


def annotate(url: str, barrier: Any, annotator_id: int, image_ids: list[int], n: int, results: Any) -> None:
    """Write ``n`` annotations, one transaction each, cycling over ``image_ids``; report how many succeeded."""
    from db import repository
    from db.engine import make_engine, make_sessionmaker

    engine = make_engine(url)
    Session = make_sessionmaker(engine)  # noqa: N806
    with engine.connect():
        pass  # connect before the start signal, so all processes write at once
    barrier.wait(timeout=60)
    written = 0
    try:
        for i in range(n):
            with Session.begin() as session:
                repository.add_annotation(
                    session, image_ids[i % len(image_ids)], annotator_id, kind="grade-only", grade=i % 5
                )
            written += 1
    finally:
        results.put(("annotate", written))
        engine.dispose()


def claim_all(url: str, barrier: Any, worker_id: str, results: Any) -> None:
    """Claim and complete jobs until none is left; report the ids claimed."""
    from db import repository
    from db.engine import make_engine, make_sessionmaker

    engine = make_engine(url)
    Session = make_sessionmaker(engine)  # noqa: N806
    with engine.connect():
        pass
    barrier.wait(timeout=60)
    claimed: list[int] = []
    try:
        while True:
            with Session.begin() as session:
                job = repository.claim_job(session, worker_id, lease_s=600)
                if job is None:
                    break
                job_id = job.id
            claimed.append(job_id)
            with Session.begin() as session:
                repository.complete_job(session, job_id, worker_id, {"by": worker_id})
    finally:
        results.put((worker_id, claimed))
        engine.dispose()
