"""How often the background worker looks for jobs, how long it holds one and how long one attempt may run.

The defaults of :class:`feedback.worker.Worker` and of ``drgnet worker``'s options, apart from the worker so that the
command line shows them without importing torch.
"""

from __future__ import annotations

DEFAULT_LEASE_S = 120.0  # renewed every third of it while the job reports progress
DEFAULT_POLL_S = 10.0  # between looks at an empty queue
DEFAULT_TIME_LIMIT_S = 6 * 3600.0  # a retraining on CPU takes minutes to an hour; six hours means it is stuck
