"""What every event-sourced service exposes besides its own commands.

A service class inherits :class:`EventSourcedService` and names its store
dependency ``repo`` and its auth dependency ``auth``. It then answers:

- ``replay(after, limit)``: its log as CloudEvents, in log order, for a
  consumer that starts late or missed events (callers need the ``system`` or
  ``admin`` role);
- ``status()``: version, node, and whether the database answers.
"""

from importlib.metadata import PackageNotFoundError, version

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


class EventSourcedService:
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
