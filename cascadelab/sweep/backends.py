"""Where runs execute: in this process, in a persistent pool of local processes, or on a Dask cluster.

All three expose the same small surface (``share``, ``submit``, ``first_completed``) and the
same bounded ``imap_unordered``, so the runner has one code path and never holds more than
``window`` chunks in flight, whatever the size of the sweep.  Dask (``dask.distributed``) is
the engine for more than one machine: ``Dask.connect("tcp://host:8786")`` joins an existing
cluster, ``Dask.local(n)`` starts a LocalCluster (tests, one machine).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["Backend", "Dask", "Processes", "Serial", "make_backend"]


class Backend:
    """Common surface; subclasses provide submit / first_completed / close."""

    name = "backend"
    workers = 1

    def share(self, obj: Any) -> Any:
        """A handle to ``obj`` that submitted tasks can take as an argument (Dask: scattered once)."""
        return obj

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    def first_completed(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        raise NotImplementedError

    def cancel(self, pending: Iterable[Any]) -> None:
        for f in pending:
            f.cancel()

    def close(self) -> None:
        """Release workers."""

    def imap_unordered(self, fn: Callable[..., Any], shared: Any, payloads: Iterator[Any], window: int
                       ) -> Iterator[Any]:
        """``fn(shared, payload)`` for every payload, yielded as they finish, at most ``window`` in flight."""
        handle = self.share(shared)
        pending: set[Any] = set()
        try:
            for payload in payloads:
                pending.add(self.submit(fn, handle, payload))
                if len(pending) >= window:
                    break
            while pending:
                done, pending = self.first_completed(pending)
                for fut in done:
                    yield fut.result()
                for payload in payloads:  # refill what finished
                    pending.add(self.submit(fn, handle, payload))
                    if len(pending) >= window:
                        break
        finally:
            self.cancel(pending)

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Serial(Backend):
    """Runs each chunk when it is submitted, in this process (``--workers 1``)."""

    name = "serial"

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # delivered through result(), like a pool's future
            fut.set_exception(exc)
        return fut

    def first_completed(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        return set(pending), set()


class Processes(Backend):
    """One persistent pool of ``workers`` local processes (spawned: no state inherited from the driver)."""

    name = "processes"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_exit_with_parent, initargs=(os.getpid(),))

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        return self.pool.submit(fn, *args)

    def first_completed(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        done, rest = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        return set(done), set(rest)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _exit_with_parent(parent: int) -> None:
    """In a pool worker: exit when the driver is gone (killed with SIGKILL, say) instead of lingering."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


class Dask(Backend):
    """A dask.distributed Client: an existing cluster (``connect``) or a LocalCluster (``local``)."""

    name = "dask"

    def __init__(self, client: Any, cluster: Any = None) -> None:
        self.client = client
        self.cluster = cluster
        info = client.scheduler_info()
        self.workers = max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))

    @classmethod
    def connect(cls, address: str) -> Dask:
        from distributed import Client

        return cls(Client(address, timeout="30s"))

    @classmethod
    def local(cls, workers: int) -> Dask:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return cls(Client(cluster), cluster)

    def share(self, obj: Any) -> Any:
        return self.client.scatter(obj, broadcast=True, hash=False)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def first_completed(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        from distributed import wait

        done, rest = wait(list(pending), return_when="FIRST_COMPLETED")
        return set(done), set(rest)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_backend(workers: int = 1, scheduler: str | None = None) -> Backend:
    """``scheduler``: a Dask address, or 'local' for a LocalCluster of ``workers``; else processes or serial."""
    if scheduler == "local":
        return Dask.local(workers)
    if scheduler:
        return Dask.connect(scheduler)
    return Serial() if workers <= 1 else Processes(workers)
