"""A worker process of gridflow's distributed runtime: ``python -m gridflow._worker
ADDRESS --nthreads N --memory-limit BYTES --name NAME`` (how ``LocalCluster`` starts them)."""

import argparse

from . import _gridflow


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gridflow._worker")
    p.add_argument("address")
    p.add_argument("--nthreads", type=int, default=1)
    p.add_argument("--memory-limit", type=int, default=0)
    p.add_argument("--name", default=None)
    a, _unknown = p.parse_known_args(argv)
    import os

    _gridflow.run_worker(a.address, a.nthreads, a.memory_limit, a.name or f"worker-{os.getpid()}")


if __name__ == "__main__":
    main()
