"""Running cases in parallel: worker processes on this machine, or a Dask cluster (local or remote).

Both yield (case id, record or exception) as cases finish, and honour a cancel: no queued case
starts, cases in flight are abandoned (:func:`.case.prepare_case` checks the token between steps).
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...runtime.processes import CancelToken
from .case import prepare_case, remove_partial_files
from .layouts import Case

# One case to prepare: (case, datastore folder, channels, reference channel, prepare_case's options).
Job = tuple[Case, Path, Sequence[str], str, dict[str, Any]]

class _EventCancelToken(CancelToken):
    """A cancel token that a worker process reads from an event its parent sets."""

    def __init__(self, event: Any) -> None:
        self._event = event


_WORKER_CANCEL: CancelToken | None = None


def _init_worker(event: Any) -> None:
    """Worker processes leave Ctrl-C to the parent, which cancels them through ``event``."""
    global _WORKER_CANCEL
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_CANCEL = _EventCancelToken(event)


def _prepare_case_job(job: Job) -> dict[str, Any]:
    case, out, channels, reference, options = job
    return prepare_case(case, out, channels, reference, **options, cancel=_WORKER_CANCEL)


def run_in_processes(jobs: list[Job], workers: int, cancel: CancelToken) -> Iterator[tuple[str, Any]]:
    """Yield (case id, record or exception) as worker processes finish the jobs; on cancel, the
    workers abandon their cases (their token is an event set here) and queued jobs never start."""
    # Spawned, not forked: forking a process whose ITK thread pool is running can kill the child.
    context = multiprocessing.get_context("spawn")
    event = context.Event()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(event,)) as pool:
        futures = {pool.submit(_prepare_case_job, job): job[0].case_id for job in jobs}
        pending = set(futures)
        while pending:
            # Polled rather than blocking, so that a Ctrl-C (a flag set by the signal handler) is seen.
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                if future.cancelled():
                    continue
                try:
                    yield futures[future], future.result()
                except Exception as error:
                    yield futures[future], error
            if cancel.cancelled and not event.is_set():
                event.set()
                for future in pending:
                    future.cancel()  # queued jobs; running ones end with CancelledError


def local_cluster(workers: int):
    """A Dask cluster of worker processes on this machine, reachable from it alone: scheduler, workers and
    dashboard listen on the loopback interface (Dask's default is every interface, dashboard on port 8787)."""
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address="127.0.0.1:0")


def run_on_dask(jobs: list[Job], scheduler: str, workers: int, cancel: CancelToken | None = None) -> Iterator[tuple[str, Any]]:
    """Yield (case id, record or exception) as a Dask cluster finishes the jobs. On cancel, jobs not
    started are cancelled and running ones are left (a local cluster's workers are stopped)."""
    try:
        from dask.distributed import Client, wait as dask_wait
    except ImportError as error:
        raise InputError("scheduler", "Dask is not installed: pip install 'dask[distributed]'") from error
    cancel = cancel or CancelToken()
    cluster = None
    if scheduler == "local":
        # Its processes inherit an ignored SIGINT: Ctrl-C is the parent's to handle (it cancels the jobs
        # and closes the cluster), not a KeyboardInterrupt traceback in every worker.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            cluster = local_cluster(workers)
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
    try:
        with Client(cluster if cluster is not None else scheduler, timeout="10s") as client:
            futures = {client.submit(_prepare_case_job, job, pure=False): job[0].case_id for job in jobs}
            pending = set(futures)
            while pending and not cancel.cancelled:
                try:
                    done, pending = dask_wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    continue
                pending = set(pending)
                for future in done:
                    try:
                        yield futures[future], future.result()
                    except Exception as error:
                        yield futures[future], error
            if pending:
                client.cancel(list(pending))
    except OSError as error:
        raise InputError("scheduler", f"cannot reach the Dask scheduler at {scheduler} ({error})") from error
    finally:
        if cluster is not None:
            cluster.close()
            # Its workers are gone, killed in the middle of a case on a cancel: nothing writes those cases any more.
            for case, out, *_ in jobs:
                remove_partial_files(out, case.case_id)


def run_here(jobs: list[Job], cancel: CancelToken) -> Iterator[tuple[str, Any]]:
    """Yield (case id, record or exception) preparing the jobs one after the other in this process, until a cancel."""
    for case, out, channels, reference, options in jobs:
        if cancel.cancelled:
            break
        try:
            yield case.case_id, prepare_case(case, out, channels, reference, **options, cancel=cancel)
        except Exception as error:  # one bad case must not stop the others
            yield case.case_id, error
