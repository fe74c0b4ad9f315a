"""What a long-running process beside the nameko services shares: the relay, the
replication link or ingest, notify's city ingest."""

import signal
import threading


def stop_on_signals():
    """An event that SIGTERM or SIGINT sets, for a work loop that ends cleanly when it
    is set. It is set from another thread: the interrupted main thread may hold the
    event's lock."""
    stop = threading.Event()

    def request_stop(*_):
        threading.Thread(target=stop.set).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)
    return stop
