"""What every event-sourced service exposes besides its own commands.

A service class inherits :class:`EventSourcedService` and names its store
dependency ``repo`` and its auth dependency ``auth``. It then answers:

- ``replay(after, limit)``: its log as CloudEvents, in log order, for a
  consumer that starts late or missed events (callers need the ``system`` or
  ``admin`` role);
- ``status()``: version, node, and whether the database answers;

and serves over HTTP (:mod:`shared.health`, on nameko's ``WEB_SERVER_ADDRESS``):

- ``GET /health``: liveness and version;
- ``GET /ready``: 200 when PostgreSQL and RabbitMQ answer, 503 naming which did not;
- ``GET /metrics``: Prometheus metrics (:mod:`shared.metrics`).

Every line a worker logs names the service and the worker's call id
(:class:`WorkerLogContext`, read by :class:`shared.logs.JsonFormatter`).
"""

from importlib.metadata import PackageNotFoundError, version

from nameko.extensions import DependencyProvider

from shared import health, logs
from shared.rpc import rpc

MAX_REPLAY_BATCH = 5000


def rembug_version():
    try:
        return version("rembug")
    except PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]


class WorkerLogContext(DependencyProvider):
    """Binds the service name and call id of each worker for the log formatter."""

    def setup(self):
        logs.set_process_service(self.container.service_name)

    def worker_setup(self, worker_ctx):
        # each worker runs in its own green thread, with its own context
        logs.bind_worker(worker_ctx.service_name, worker_ctx.call_id)

    def worker_teardown(self, worker_ctx):
        logs.unbind_worker()


class EventSourcedService:
    log_context = WorkerLogContext()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # the lines ``nameko run`` logs before the container is set up name the service too
        if getattr(cls, "name", None):
            logs.set_process_service(cls.name, replace=False)

    @rpc
    def replay(self, after=0, limit=1000):
        """Events with a sequence above ``after``, at most ``limit`` (capped at 5000)."""
        self.auth.require("system", "admin")
        limit = max(1, min(int(limit), MAX_REPLAY_BATCH))
        return [e.to_cloudevent() for e in self.repo.store.read(int(after), limit)]

    @rpc
    def status(self):
        """Version and health; needs no token, reveals no data."""
        try:
            head = self.repo.store.head()
            database = "ok"
        except Exception:
            head, database = None, "unavailable"
        return {
            "service": self.repo.config.service,
            "version": rembug_version(),
            "node": self.repo.config.node,
            "database": database,
            "log_head": head,
        }

    # -- over HTTP: for probes and Prometheus, no token, no data ------------------------------

    @health.http("GET", "/health")
    def http_health(self, request):
        return health.liveness_response(self.repo.config, rembug_version())

    @health.http("GET", "/ready")
    def http_ready(self, request):
        return health.readiness_response(self.repo.config)

    @health.http("GET", "/metrics")
    def http_metrics(self, request):
        return health.metrics_response(self.repo)
