"""A worker process for the crash test: runs one job with a short lease (killed with SIGKILL from outside)."""

from __future__ import annotations

import json
import sys


def main() -> None:
    url, data_dir, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    import torch

    torch.set_num_threads(1)
    from db.engine import make_engine, make_sessionmaker
    from feedback.retrain import RetrainConfig
    from feedback.worker import Worker

    engine = make_engine(url)
    worker = Worker(
        make_sessionmaker(engine), data_dir, "doomed", lease_s=2.0, retrain=RetrainConfig.from_params(settings)
    )
    worker.run_once()


if __name__ == "__main__":
    main()
