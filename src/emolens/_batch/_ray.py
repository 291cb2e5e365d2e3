"""The ``ray`` engine: Ray Data with one Analyzer per actor, written by Ray's Parquet writer.

The driver turns the inputs into a Ray Dataset, ``map_batches`` runs :class:`RayAnalyzer` actors
(each holds one :class:`~emolens._batch._work.Worker`, so the rows are the local engine's), and
``write_parquet`` writes the parts that :class:`~emolens._batch._store.Store` then merges.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import subprocess
import warnings
from collections.abc import Sequence
from typing import Any

from .._optional import require
from .._rows import column_types
from ..errors import EmolensError, InvalidOptionError
from ._inputs import BatchInput
from ._job import Job
from ._reaper import start_reaper
from ._store import Store, arrow_schema

__all__ = ["CHUNKS_PER_CALL", "QUIET_LOCAL_CLUSTER", "RayAnalyzer", "run_ray"]

#: A local cluster started for one run does not prestart idle Python workers: on a small machine they
#: take the CPU the actors need (measured: 2 actors on 2 cores, 25.6 s -> 21.4 s for 2,100 crops).
QUIET_LOCAL_CLUSTER = {"prestart_worker_first_driver": False}

#: Chunks given to an actor per call (fewer when there are too few to keep every actor busy).
CHUNKS_PER_CALL = 8


class RayAnalyzer:
    """A Ray Data actor: chunks of inputs in (JSON, the local engine's chunks), a pyarrow table of rows out."""

    def __init__(self, job: Job, threads: int | None) -> None:
        from ._work import Worker

        self.worker = Worker(job, threads=threads)
        self.schema = arrow_schema(column_types(self.worker.labels))

    def __call__(self, batch: dict[str, Any]) -> Any:
        import pyarrow

        rows = []
        for chunk in batch["chunk"]:
            rows.extend(self.worker.rows([BatchInput(path, video) for path, video in json.loads(str(chunk))]))
        return pyarrow.Table.from_pylist(rows, schema=self.schema)


def _preflight(job: Job, threads: int | None) -> EmolensError | None:
    """Build one worker where the actors will run, and return what stopped it, if anything.

    An actor whose start fails (an unknown detector, no GPU on the node, an output whose rows another detector
    found) dies, and Ray hands the driver an ``ActorDiedError`` whose message is the traceback as text; built
    in a task first, the error comes back as itself.
    """
    from ._work import Worker

    try:
        Worker(job, threads=threads)
    except EmolensError as exc:
        return exc
    return None


#: Seconds to wait for a cluster's port to answer before giving up (Ray itself retries for over a minute).
CONNECT_TIMEOUT_S = 5.0


def check_reachable(address: str) -> None:
    """Fail within seconds, with what to do, when nothing listens at ``address`` (``auto`` is Ray's to find)."""
    if address == "auto":
        return
    if address.startswith("ray://"):
        require("grpc", extra="ray", feature="Ray client addresses (ray://HOST:PORT)", package="ray[client]")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidOptionError(
            f"--address {address!r}: give HOST:PORT (the head's GCS port, 6379 by default), ray://HOST:PORT "
            "(Ray client, 10001 by default) or auto",
            option="address",
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise InvalidOptionError(
            f"nothing answers at {address} within {CONNECT_TIMEOUT_S:g} s ({exc.strerror or exc}): start the "
            "cluster (`ray start --head`), check the address, or leave out --address to start a local one",
            option="address",
        ) from None


def run_ray(
    chunks: Sequence[list[BatchInput]],
    job: Job,
    store: Store,
    *,
    address: str | None,
    actors: int,
    num_cpus: float,
    num_gpus: float,
    threads: int | None,
    progress: bool,
) -> None:
    """Analyse ``chunks`` on a Ray cluster (``address``) or a local one started for this run.

    Each chunk is one forward pass in :class:`RayAnalyzer`, exactly as in the local engine, so the
    rows come out the same.
    """
    ray = require("ray", extra="ray", feature="the ray engine")
    require("ray.data", extra="ray", feature="the ray engine", package="ray[data]")
    actors = max(1, min(actors, len(chunks)))  # more actors than chunks would only start idle processes
    started_here = not ray.is_initialized()
    reaper = None
    if started_here:
        if address:
            check_reachable(address)
            ray.init(address=address, log_to_driver=False)
        else:
            reaper = start_reaper()  # kills this cluster's processes should this one die without stopping it
            ray.init(
                num_cpus=max(1, round(actors * num_cpus)),
                num_gpus=num_gpus * actors or None,
                log_to_driver=False,
                include_dashboard=False,
                _system_config=QUIET_LOCAL_CLUSTER,
            )
    logger = logging.getLogger("ray.data")
    level = logger.level
    try:
        refused = ray.get(ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(_preflight).remote(job, threads))
        if refused is not None:
            raise refused
        with warnings.catch_warnings():  # Ray's own deprecation notices are not the user's to act on
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray(\.|$)")
            if not progress:  # quiet means quiet: Ray Data logs its progress and each write
                logger.setLevel(logging.ERROR)
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = progress
            items = [{"chunk": json.dumps([(item.path, item.video) for item in chunk])} for chunk in chunks]
            # Several chunks per call (each still one forward pass): Ray's per-task cost is paid per block.
            per_call = max(1, min(CHUNKS_PER_CALL, -(-len(items) // (2 * actors))))
            dataset = ray.data.from_items(items, override_num_blocks=-(-len(items) // per_call))
            rows = dataset.map_batches(
                RayAnalyzer,
                fn_constructor_args=(job, threads),
                batch_size=per_call,
                concurrency=actors,
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                batch_format="numpy",
            )
            store.parts.mkdir(exist_ok=True)
            # The writer asks for no CPU of its own, so its tasks never wait behind the actors, which hold the CPUs.
            rows.write_parquet(str(store.parts.resolve()), ray_remote_args={"num_cpus": 0})
    finally:
        logger.setLevel(level)
        if started_here:
            ray.shutdown()
        if reaper is not None and reaper.stdin is not None:
            reaper.stdin.close()  # done: it removes any straggler and exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                reaper.wait(timeout=5)
