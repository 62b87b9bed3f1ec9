"""OpenLineage run events of job runs and loads, through the ``openlineage-python`` client.

Off unless ``[redsys] lineage_url`` is set. Then sched sends, for every run, a ``START`` event
when a worker takes it and a ``COMPLETE`` or ``FAIL`` event when it ends (``ABORT`` for an
aborted run, ``FAIL`` with an error message for FAILED and TIMEOUT), each with:

- the job: namespace ``lineage_namespace`` (default ``redpss://<host>/<instance>``), name = the
  job's name, facets ``jobType`` (BATCH, integration REDPSS, the job kind) and ``sql`` (the
  statement of a SQL job);
- the run: a UUID derived from the instance and the run id (the same in START and its end),
  facets ``processing_engine`` (redpss and its version) and ``errorMessage`` on failure;
- inputs and outputs of a LOAD run: at START the file that fired it (``file://<host>``, its
  path in ``data/input``) and the loader's target table with its columns (``schema`` facet);
  at the end the files this run loaded (from the load ledger) and the table with the rows
  written (``outputStatistics``). A SQL or CMD job names no datasets (the statement is in the
  ``sql`` facet: the receiver may parse it).

The hook (:meth:`Lineage.attach`) only queues what the run path hands it; one background
thread builds and sends the events, so a slow or absent receiver never delays a run. A full
queue (``QUEUE_SIZE``) drops events (counted, logged). Errors are logged, never raised into
sched.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redpss.config import Config
from redpss.dictionary import Dictionary
from redpss.instance import Instance

if TYPE_CHECKING:
    from redpss.sched.engine import Engine

__all__ = ["QUEUE_SIZE", "Lineage"]

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
_STOP = object()
_STATES = {"OK": "COMPLETE", "SKIPPED": "COMPLETE", "ABORTED": "ABORT"}


class Lineage:
    """Sends the run events of one sched (see the module docstring)."""

    def __init__(
        self, instance: Instance, config: Config, dictionary: Dictionary, transport: Any
    ) -> None:
        from redpss import __version__

        self.instance = instance
        self.config = config
        self.dictionary = dictionary
        self.transport = transport
        self.host = socket.gethostname()
        cfg = config.redsys
        self.namespace = cfg.lineage_namespace or f"redpss://{self.host}/{instance.name}"
        self.version = __version__
        self.sent = self.failed = self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_SIZE)
        self._thread = threading.Thread(target=self._send_all, name="lineage", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ set-up

    @classmethod
    def from_config(
        cls,
        instance: Instance,
        config: Config,
        dictionary: Dictionary,
    ) -> Lineage | None:
        """The sender for ``config``; None when lineage is off (or its client is missing)."""
        cfg = config.redsys
        if not cfg.lineage_url:
            return None
        try:
            from openlineage.client.transport.http import (
                ApiKeyTokenProvider,
                HttpConfig,
                HttpTransport,
                TokenProvider,
            )
        except ImportError:
            log.error(
                "lineage_url is set but the openlineage-python client is not installed: "
                "no lineage events are sent (pip install openlineage-python)"
            )
            return None
        key = cfg.lineage_api_key.reveal()
        auth = ApiKeyTokenProvider({"apiKey": key}) if key else TokenProvider({})
        transport = HttpTransport(
            HttpConfig(
                url=cfg.lineage_url,
                endpoint=cfg.lineage_endpoint,
                timeout=cfg.lineage_timeout,
                auth=auth,
                retry={"total": 2, "backoff_factor": 0.5, "status_forcelist": [500, 502, 503, 504]},
            )
        )
        log.info(
            "lineage: run events go to %s (namespace %s)",
            cfg.lineage_url,
            cfg.lineage_namespace or "default",
        )
        return cls(instance, config, dictionary, transport)

    @classmethod
    def attach(cls, engine: Engine) -> Lineage | None:
        """The one hook in sched: send the events of ``engine``'s runs (when lineage is on)."""
        sender = cls.from_config(engine.instance, engine.config, engine.dictionary)
        if sender is not None:
            engine.on_start.append(sender.started)
            engine.on_end.append(sender.ended)
        return sender

    # ------------------------------------------------------------------ the hook (run path)

    def started(self, run: Any) -> None:
        """A worker took ``run`` (engine thread: only queues)."""
        self._put(("START", run, None, datetime.now(UTC)))

    def ended(self, run: Any, outcome: Any) -> None:
        """``run`` ended with ``outcome`` (engine thread: only queues)."""
        self._put((_STATES.get(outcome.state, "FAIL"), run, outcome, datetime.now(UTC)))

    def _put(self, item: Any) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 1000 == 0:
                log.warning("lineage: queue full, %d events dropped so far", self.dropped)

    @property
    def thread(self) -> threading.Thread:
        """The sender thread: sched's heartbeat watches it."""
        return self._thread

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (within ``timeout``), then stop the sender thread."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
        log.info(
            "lineage: %d events sent, %d failed, %d dropped", self.sent, self.failed, self.dropped
        )

    # ------------------------------------------------------------------ the sender thread

    def _send_all(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                event = self.event(*item)
                self.transport.emit(event)
                self.sent += 1
            except Exception as exc:  # a receiver's trouble never reaches sched
                self.failed += 1
                log.warning(
                    "lineage: %s event of run %s not sent: %s",
                    item[0],
                    getattr(item[1], "run_id", "?"),
                    exc,
                )

    def event(self, kind: str, run: Any, outcome: Any, when: datetime) -> Any:
        """The OpenLineage ``RunEvent`` of ``run`` (``kind``: START, COMPLETE, FAIL, ABORT)."""
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import (
            error_message_run,
            job_type_job,
            processing_engine_run,
            sql_job,
        )
        from openlineage.client.uuid import generate_static_uuid

        job = run.job
        job_facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration="REDPSS", jobType=job.kind
            )
        }
        if job.kind == "SQL":
            job_facets["sql"] = sql_job.SQLJobFacet(query=job.action)
        run_facets: dict[str, Any] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=self.version, name="redpss"
            )
        }
        if kind == "FAIL":
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"{outcome.state}: {outcome.message or ''}".strip(),
                programmingLanguage={"SQL": "SQL", "CMD": "SHELL"}.get(job.kind, "PYTHON"),
            )
        run_id = generate_static_uuid(run.queued_at, f"{self.instance.name}:{run.run_id}".encode())
        inputs, outputs = self._datasets(kind, run, outcome) if job.kind == "LOAD" else ([], [])
        return RunEvent(
            eventType=RunState[kind],
            eventTime=when.isoformat(),
            run=Run(runId=str(run_id), facets=run_facets),
            job=Job(namespace=self.namespace, name=job.name, facets=job_facets),
            inputs=inputs,
            outputs=outputs,
            producer=f"urn:redpss:{self.version}",
        )

    def _table_namespace(self) -> str:
        d = self.config.default
        if d.dictionary.value == "exasol":
            return f"exasol://{d.exa_connection}"
        return f"sqlite://{self.host}{self.instance.db_dir}"

    def _datasets(self, kind: str, run: Any, outcome: Any) -> tuple[list[Any], list[Any]]:
        from openlineage.client.event_v2 import InputDataset, OutputDataset
        from openlineage.client.facet_v2 import (
            output_statistics_output_dataset,
            schema_dataset,
        )

        files = f"file://{self.host}"
        folder = self.instance.home / "data" / "input"
        loader = self.dictionary.loader(run.job.action.strip())
        if kind == "START":
            names = [run.key] if run.key else []
        else:
            names = [
                e.file_name
                for e in self.dictionary.load_ledger(limit=1000)
                if e.run_id == run.run_id
            ]
        inputs = [InputDataset(namespace=files, name=str(folder / n)) for n in names]
        if loader is None:
            return inputs, []
        fields = [
            schema_dataset.SchemaDatasetFacetFields(name=c.name, type=c.type, ordinal_position=i)
            for i, c in enumerate(loader.columns, start=1)
        ]
        out_facets: dict[str, Any] = {}
        if kind != "START" and outcome is not None:
            out_facets["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=outcome.rows or 0, fileCount=len(names)
                )
            )
        output = OutputDataset(
            namespace=self._table_namespace(),
            name=loader.target,
            facets={"schema": schema_dataset.SchemaDatasetFacet(fields=fields)},
            outputFacets=out_facets,
        )
        return inputs, [output]
