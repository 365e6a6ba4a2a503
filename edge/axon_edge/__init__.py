"""axon-edge: the robot-side agent.

It holds the robot's tasks in SQLite, talks to the recorder and delivers status events to the
control plane through a durable outbox. Robots are small: this package imports only the standard
library, httpx, pyyaml, starlette, uvicorn, prometheus-client and the light parts of axon_dagster
(domain, recorder clients, httpx API clients, recording sidecar helpers) — never Dagster, Ray, Daft.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
