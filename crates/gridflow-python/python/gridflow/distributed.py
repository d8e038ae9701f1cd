"""``Client`` and ``LocalCluster``: gridflow's distributed runtime from Python, with
Dask's names. Creating a client makes ``compute()`` run on its cluster until it is closed."""

from __future__ import annotations

import json
import sys

from . import _gridflow


def _memory(limit):
    if limit is None or limit == "auto":
        return None
    if isinstance(limit, (int, float)):
        return int(limit)
    return _gridflow.parse_size(str(limit))


def _worker_names(handle, workers):
    """Worker names for ``workers``: names or data addresses (as Dask's ``retire_workers``
    takes), a single one or a list."""
    if workers is None:
        raise ValueError("retire_workers: name the workers to retire (workers=[...])")
    if isinstance(workers, str):
        workers = [workers]
    workers = list(workers)
    if not workers:
        raise ValueError("retire_workers: no worker named (workers=[])")
    by_address = {w[1]: w[0] for w in handle.workers()}
    names = []
    for w in workers:
        w = str(w)
        # a data address with or without its scheme
        bare = w.split("://", 1)[-1]
        names.append(by_address.get(w) or by_address.get(bare) or w)
    return names


def _retire(handle, workers):
    before = {w[0]: w for w in handle.workers()}
    retired = handle.retire_workers(_worker_names(handle, workers))
    return {
        before[n][1]: {"name": n, "nthreads": before[n][2], "memory_limit": before[n][3]}
        for n in retired
        if n in before
    }


def _adaptive_target(handle, details):
    t = json.loads(handle.adaptive_target())
    return t if details else t["target"]


def _start_local(n_workers, threads_per_worker, memory_limit, dashboard_address=":8787"):
    # Workers are this interpreter running gridflow's worker loop (the Rust one).
    return _gridflow.Client.start_local(
        sys.executable,
        ["-m", "gridflow._worker"],
        n_workers,
        threads_per_worker,
        _memory(memory_limit),
        None if dashboard_address is None else str(dashboard_address),
    )


class LocalCluster:
    """A scheduler and worker processes on this machine. Sizes left out come from the
    machine (cores, and the memory this process may use: cgroup and Slurm limits), as
    Dask's ``LocalCluster()``; ``memory_limit`` is per worker (``"4GB"`` or bytes). The
    scheduler serves its dashboard on ``dashboard_address`` (``":8787"`` by default, a free
    port when that one is taken; ``None`` for none), as Dask's does."""

    def __init__(self, n_workers=None, threads_per_worker=None, memory_limit=None, dashboard_address=":8787"):
        self._handle = _start_local(n_workers, threads_per_worker, memory_limit, dashboard_address)

    @property
    def scheduler_address(self):
        return self._handle.address

    @property
    def dashboard_link(self):
        """The dashboard's URL (``http://127.0.0.1:8787/status``), or ``None`` without one."""
        return self._handle.dashboard_link

    @property
    def workers(self):
        return {w[0]: {"address": w[1], "nthreads": w[2], "memory_limit": w[3]} for w in self._handle.workers()}

    def scale(self, n):
        """Asks for exactly ``n`` workers and stops adaptive scaling. New workers join as
        they start; workers taken away (the newest first) retire gracefully: their
        results are moved to the workers that stay before they exit."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"scale: n must be a whole number of workers >= 0, not {n!r}")
        self._handle.scale(n)

    def adapt(self, minimum=0, maximum=None):
        """Scales between ``minimum`` and ``maximum`` workers (``None``: no bound but the
        work pending) by the scheduler's adaptive target, as Dask's ``adapt``: up at once
        under load, down after a few quiet checks. Lasts until ``scale`` or ``close``."""
        if maximum is None:
            maximum = 2**31
        for name, v in (("minimum", minimum), ("maximum", maximum)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"adapt: {name} must be a whole number >= 0, not {v!r}")
        self._handle.adapt(minimum, maximum)

    def worker_status(self):
        """Every worker started and what became of it, as dicts ``{"name", "id",
        "state": {"state": "starting" | "running" | "retiring" | "failed" | ...}}`` (a
        failed one with its ``reason``); the shape ``GatewayCluster.worker_status`` has."""
        return json.loads(self._handle.worker_status())

    def adaptive_target(self, details=False):
        """How many workers the pending work wants; see ``Client.adaptive_target``."""
        return _adaptive_target(self._handle, details)

    def close(self):
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"LocalCluster({self.scheduler_address!r}, workers={len(self.workers)})"


class Client:
    """Computes on a gridflow cluster. ``Client()`` starts a ``LocalCluster`` sized from
    the machine; ``Client(n_workers=, threads_per_worker=, memory_limit=)`` forwards to it;
    ``Client("tcp://host:port")`` connects to a running scheduler (``gridflow
    scheduler``); ``Client(cluster)`` to a ``LocalCluster``. The newest open client is
    where ``compute()`` runs."""

    def __init__(self, address=None, *, n_workers=None, threads_per_worker=None, memory_limit=None, set_as_default=True):
        self._cluster = None
        if isinstance(address, LocalCluster):
            self._cluster = address
            self._handle = _gridflow.Client.connect(address.scheduler_address)
        elif hasattr(address, "_connect_client"):
            # A cluster that knows how it is reached (a gateway's: through the gateway's
            # address, with the cluster's own token).
            self._cluster = address
            self._handle = address._connect_client()
        elif address is not None:
            self._handle = _gridflow.Client.connect(str(address))
        else:
            self._handle = _start_local(n_workers, threads_per_worker, memory_limit)
        self._closed = False
        if set_as_default:
            self._handle.make_default()

    @property
    def scheduler_address(self):
        return self._handle.address

    @property
    def dashboard_link(self):
        """The dashboard's URL (``http://host:port/status``), or ``None`` when the scheduler
        serves none. For a scheduler reached by address it is the one the scheduler reports,
        a dashboard on every interface (``0.0.0.0``) given with the host this client
        connected to."""
        if self._cluster is not None:
            return self._cluster.dashboard_link
        return self._handle.dashboard_link

    @property
    def cluster(self):
        return self._cluster

    def scheduler_info(self):
        return {
            "address": self.scheduler_address,
            "workers": {w[1]: {"name": w[0], "nthreads": w[2], "memory_limit": w[3]} for w in self._handle.workers()},
        }

    def nthreads(self):
        return {w[1]: w[2] for w in self._handle.workers()}

    def retire_workers(self, workers=None):
        """Retires ``workers`` (worker names, or data addresses as ``scheduler_info()``
        lists them) gracefully, as Dask's ``retire_workers``: they get no new tasks,
        finish those they have, and the results only they hold are moved to the workers
        that stay. Returns once they have exited, as ``{address: {"name", "nthreads",
        "memory_limit"}}``. A name no connected worker has raises ``GridflowError``
        (the others are still retired). A cluster's nanny may start workers again; to
        shrink a ``LocalCluster`` for good use its ``scale``."""
        return _retire(self._handle, workers)

    def adaptive_target(self, details=False):
        """How many workers the work pending on the scheduler wants (Dask's
        ``adaptive_target``): the larger of what finishes it in about 5 s and what holds its
        results within the workers' memory limits; 0 when idle. ``details=True`` gives the
        figures behind it as a dict (``target``, ``cpu``, ``memory``, ``unfinished_tasks``,
        ``ready_tasks``, ``expected_seconds``, ``workers``)."""
        return _adaptive_target(self._handle, details)

    def compute(self, obj):
        """Computes a gridflow object on this client's cluster."""
        self._handle.make_default()
        return obj.compute()

    def close(self):
        """Stops using the cluster (and stops it, if this client started it)."""
        if not self._closed:
            self._handle.close()
            self._closed = True

    @property
    def status(self):
        return "closed" if self._closed else "running"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        n = len(self._handle.workers()) if not self._closed else 0
        return f"<gridflow.Client: scheduler={self.scheduler_address!r}, workers={n}, status={self.status}>"
