"""The worker: one pass (`run_once`) creates the runs that are due, claims and launches
them within the concurrency limit, heartbeats its claims and recovers the runs of dead
owners; `serve` repeats passes until stopped, `burst` until nothing is left to do.

Tests drive `run_once` with a fake time and an in-process launcher; nothing here sleeps
except through the time source.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
import pendulum

from durable import crashpoints
from durable.core.flow import CATCHUPS, Catchup
from durable.liveness import Liveness, liveness, process_token
from durable.store import Store
from durable.store.records import SchedulableFlowRecord, ScheduledRunRecord
from durable.store.registry import load_copy
from durable.timesource import TimeSource, monotonic
from durable.worker.launcher import EXIT_DISK_FULL, Handle, Launcher
from durable.worker.maintenance import WalMaintenance
from durable.worker.ticks import due_events, plan_ticks

logger = logging.getLogger(__name__)

UNFINISHED = ("Pending", "Scheduled", "Running")
"""Flow run states that mean a run whose process has ended did not finish: it crashed."""

DISK_FULL_BACKOFF = 30.0
"""Seconds (monotonic) a worker claims nothing after a run ended on a full disk: the
run is given back uncounted, and relaunching it at once would only fail again."""

RETRY_BROKEN_SCHEDULE = 300.0
"""Seconds (monotonic) before a schedule that could not be read or stepped is tried
again: it is reported once, not unpickled and logged at every pass."""


@dataclass
class Claim:
    """A run this worker holds and has launched."""

    run: ScheduledRunRecord
    token: str
    handle: Handle


@dataclass(frozen=True)
class PassReport:
    """What one `run_once` pass did, for logs and tests."""

    created: int
    launched: int
    finished: int
    recovered: int


class Worker:
    """Creates, claims, launches, heartbeats and recovers scheduled runs on one store."""

    def __init__(
        self, store: Store, time: TimeSource, launcher: Launcher, *,
        concurrency: int = 4, name: str | None = None, catchup: Catchup = "skip",
        lease: timedelta = timedelta(seconds=30), grace: timedelta = timedelta(seconds=30),
        late_after: timedelta = timedelta(seconds=60), max_crashes: int = 3,
    ) -> None:  # fmt: skip
        self.store, self.time, self.launcher = store, time, launcher
        self.concurrency = concurrency
        """The most runs this worker runs at once."""
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        """The worker's claim name: unique among the workers sharing a database."""
        self.catchup: Catchup = catchup
        self.lease = lease
        """How long a claim lasts without a heartbeat before others may take it over."""
        self.grace = grace
        """How long a stopping worker waits for its runs before it stops them."""
        self.late_after = late_after
        """The grace period: a run still waiting this long after its time is marked
        Late, and the `none` catchup policy skips a missed tick this overdue."""
        self.max_crashes = max_crashes
        """After this many crashes a run is marked crashed instead of launched again."""
        self.claims: dict[str, Claim] = {}
        """The runs this worker launched and has not seen end, by run id."""
        self.stopping = False
        """Set to stop claiming new runs (running ones go on)."""
        self.settled = 0
        """How many launched runs this worker has seen end (finished or crashed)."""
        self.next_tick: pendulum.DateTime | None = None
        """When the next schedule tick falls, as of the latest pass (None: none)."""
        self._pid, self._token = os.getpid(), process_token(os.getpid())
        self._registered = False
        self._schedules: dict[tuple[str, int], Any] = {}
        self._upcoming: dict[str, tuple[int, float, pendulum.DateTime | None]] = {}
        """Per flow: (version, cursor, next tick) when nothing was due at the last
        pass; still valid while the version and the cursor are the same."""
        self.broken: dict[tuple[str, int], float] = {}
        """Schedules (flow name, version) that failed, with when (monotonic) to try
        them again; the others go on ticking meanwhile."""
        self._leases: dict[str, tuple[tuple[str, float], float]] = {}
        """Per run of another owner: its (lease token, lease end) as last seen, and
        since when (this worker's monotonic clock) it has not changed."""
        self.maintenance = WalMaintenance(store.path)
        """The WAL checkpoint step, run every few seconds on a pass."""
        self.disk_full_until: float | None = None
        """While set and ahead (monotonic), a run ended on a full disk: claim nothing."""

    async def run_once(self) -> PassReport:
        """Do one pass: reap, heartbeat, recover, create due runs, claim and launch."""
        settled = self.settled
        if not self._registered:
            await self.store.register_worker(
                self.name, pid=self._pid, pid_started=self._token,
                concurrency=self.concurrency, now=self.time.timestamp(),
            )  # fmt: skip
            self._registered = True
        await self.reap()
        await self.heartbeat()
        recovered = await self.recover()
        created = await self.create_due_runs()
        now = self.time.timestamp()
        await self.store.mark_late(
            overdue_before=now - self.late_after.total_seconds(),
            grace=self.late_after.total_seconds(),
        )
        backing_off = self.disk_full_until is not None and (
            monotonic() < self.disk_full_until
        )
        launched = 0 if self.stopping or backing_off else await self.claim_and_launch()
        await self.reap()
        if self.maintenance.due:  # a checkpoint blocks: off the event loop
            await anyio.to_thread.run_sync(self.maintenance.due_step)
        return PassReport(created, launched, self.settled - settled, recovered)

    # Steps -----------------------------------------------------------------------------
    async def create_due_runs(self) -> int:
        """Record every registered schedule's ticks due by now, per its catchup policy
        (the flow's own, else the worker's), and note when the next tick falls.

        A flow whose ticks are recorded up to its known next tick, which is not due
        yet, costs nothing: its schedule is neither unpickled nor stepped again.
        """
        now, created, upcoming = self.time.now(), 0, []
        for flow in await self.store.list_schedulable_flows():
            known = self._upcoming.get(flow.name)
            if known is not None and known[:2] == (flow.version, flow.cursor):
                following = known[2]
                if following is None or following > now:
                    if following is not None:
                        upcoming.append(following)
                    continue
            key = (flow.name, flow.version)
            if key in self.broken and monotonic() < self.broken[key]:
                continue
            try:
                schedule = self._schedule(flow)
                events, following = due_events(schedule, flow.cursor, now)
            except Exception:  # unpickling and filters run the user's code
                logger.exception(
                    "schedule of flow %r (version %d) cannot be read or stepped; its "
                    "other flows go on, and it is tried again in %.0f s (register a "
                    "fixed version)", flow.name, flow.version, RETRY_BROKEN_SCHEDULE,
                )  # fmt: skip
                self.broken[key] = monotonic() + RETRY_BROKEN_SCHEDULE
                continue
            self.broken.pop(key, None)
            if following is not None:
                upcoming.append(following)
            if not events:
                self._upcoming[flow.name] = (flow.version, flow.cursor, following)
                continue
            catchup = flow.catchup if flow.catchup in CATCHUPS else self.catchup
            ticks = plan_ticks(flow, events, now=now, catchup=catchup,
                               late_after=self.late_after)  # fmt: skip
            created += await self.store.add_scheduled_runs(
                flow.name, flow.cursor, ticks
            )
        self.next_tick = min(upcoming, default=None)
        return created

    def _schedule(self, flow: SchedulableFlowRecord) -> Any:
        """The flow's schedule, unpickled once per registered version."""
        key = (flow.name, flow.version)
        if key not in self._schedules:
            self._schedules[key] = load_copy(flow.schedule, flow.source_path)
        return self._schedules[key]

    async def claim_and_launch(self) -> int:
        """Claim due runs while under the concurrency limit and launch each one."""
        launched = 0
        while await self.store.count_claims(self.name) < self.concurrency:
            token, now = uuid.uuid4().hex, self.time.timestamp()
            run = await self.store.claim_due_run(
                worker=self.name, token=token, now=now,
                lease_until=now + self.lease.total_seconds(), pid=self._pid,
                pid_started=self._token,
            )  # fmt: skip
            if run is None:
                break
            logger.info("worker %s claimed scheduled run %s", self.name, run.id)
            try:
                handle = await self.launcher.launch(run)
            except Exception as exc:  # e.g. no process could start: count a crash
                logger.exception("scheduled run %s could not be launched", run.id)
                await self.settle(run.id, token, f"launch failed: {exc!r}")
                continue
            await self.store.record_launch(
                run.id, token, pid=handle.pid, pid_started=handle.token
            )
            self.claims[run.id] = Claim(run, token, handle)
            launched += 1
            if handle.returncode is not None:
                await self.reap()
        return launched

    async def reap(self) -> int:
        """Settle the claims whose process has ended: finished, or crashed."""
        ended = [c for c in self.claims.values() if c.handle.returncode is not None]
        for claim in ended:
            del self.claims[claim.run.id]
            if claim.handle.returncode == EXIT_DISK_FULL:
                await self._disk_full(claim)
                continue
            reason = f"exit code {claim.handle.returncode}"
            await self.settle(claim.run.id, claim.token, reason)
        self.settled += len(ended)
        return len(ended)

    async def _disk_full(self, claim: Claim) -> None:
        """Give back a run that stopped on a full disk, uncounted (the flow is not at
        fault, and three quick relaunches would mark it crashed), and back off."""
        self.disk_full_until = monotonic() + DISK_FULL_BACKOFF
        await self.store.release_claim(
            claim.run.id, claim.token,
            reason="the disk is full; it resumes once there is room",
        )  # fmt: skip
        logger.error(
            "scheduled run %s stopped: the disk is full; it resumes once there is "
            "room, and this worker claims nothing for %.0f s", claim.run.id,
            DISK_FULL_BACKOFF,
        )  # fmt: skip

    async def settle(self, run_id: str, token: str, reason: str) -> None:
        """Mark an ended run Finished if its flow run finished, else count a crash.

        While the worker is stopping, a run that ended unfinished (its process got the
        terminal's SIGINT or the service manager's SIGTERM with the worker) is given
        back for any worker to resume, not counted as a crash.
        """
        record = await self.store.find_flow_run(run_id)
        now = self.time.timestamp()
        if record is not None and record.state not in UNFINISHED:
            await self.store.finish_scheduled_run(
                run_id, token, state=record.state, now=now
            )
            return
        if self.stopping:
            await self.store.release_claim(
                run_id, token, reason=f"released by stopping worker {self.name} "
                f"({reason}); it resumes",
            )  # fmt: skip
            return
        status = await self.store.release_crashed_run(
            run_id, token, now=now, reason=reason, max_crashes=self.max_crashes
        )
        logger.warning("scheduled run %s crashed (%s): now %s", run_id, reason, status)

    async def heartbeat(self) -> None:
        """Record that this worker is alive and extend the leases of its claims."""
        await self.store.worker_heartbeat(
            self.name, self.time.timestamp(), stopped=False
        )
        if self.claims:
            until = self.time.timestamp() + self.lease.total_seconds()
            held = [(c.run.id, c.token) for c in self.claims.values()]
            await self.store.renew_leases(held, until)

    async def recover(self) -> int:
        """Release the claims of owners that are provably dead or whose lease expired."""
        recovered = 0
        running = await self.store.list_scheduled_runs(status="Running")
        watched = {run.id for run in running}
        self._leases = {k: v for k, v in self._leases.items() if k in watched}
        for run in running:
            if run.id in self.claims or run.lease_token is None:
                continue
            alive = liveness(run.pid, run.pid_started)
            expired = self._lease_expired(run)
            if alive is Liveness.DEAD:
                reason = f"owner process {run.pid} of {run.claimed_by!r} died"
            elif expired and alive is Liveness.UNKNOWN:
                reason = f"lease of {run.claimed_by!r} expired"
            else:
                continue  # a live process keeps its run, even past its lease
            await self.settle(run.id, run.lease_token, reason)
            recovered += 1
        return recovered

    def _lease_expired(self, run: ScheduledRunRecord) -> bool:
        """Whether the owner of `run` has not renewed its lease for a whole lease
        period, timed on this worker's monotonic clock.

        The stored lease end is in the owner's wall-clock time: trusted as such, a
        clock step (here or at the owner's) would expire a live lease or prolong a dead
        one. So it serves only as a heartbeat counter: the lease has expired once its
        (token, end) has stayed the same for `lease` seconds of this worker's watch.
        A worker that starts watching a lease therefore waits a whole period before it
        takes the run over, however long ago its owner's clock says the lease ended.
        """
        if run.lease_expires_at is None or run.lease_token is None:
            return False
        seen, now = (run.lease_token, run.lease_expires_at), self.time.monotonic()
        known = self._leases.get(run.id)
        if known is None or known[0] != seen:
            self._leases[run.id] = known = (seen, now)
        return now - known[1] >= self.lease.total_seconds()

    # Loops -----------------------------------------------------------------------------
    async def burst(self) -> None:
        """Run everything due now and wait for it; return once nothing is left."""
        while True:
            report = await self.run_once()
            if self.claims:
                await self.wait_for_claims()
            elif not report.created and not report.launched and not report.recovered:
                await self.stopped()
                return

    async def stopped(self) -> None:
        """Record that this worker has stopped (`durable workers` shows it)."""
        await self.store.worker_heartbeat(
            self.name, self.time.timestamp(), stopped=True
        )

    async def wait_for_claims(self) -> None:
        """Wait until every launched run has ended, then settle them."""
        for claim in list(self.claims.values()):
            await claim.handle.wait()
        await self.reap()

    async def serve(self, poll: timedelta = timedelta(seconds=1)) -> None:
        """Pass every `poll` (sooner when a schedule tick falls before) until
        `stopping` is set, then wait for the running runs.

        Cancelling it while it waits leaves those runs claimed: once their processes
        end, any worker recovers them (they resume).
        """
        while not self.stopping:
            await self.run_once()
            wake = self.time.now() + poll
            if self.next_tick is not None and self.next_tick < wake:
                wake = self.next_tick
            await self._nap(wake)
        await self.drain()
        crashpoints.crash_point("in_finally_of_worker_shutdown")
        await self.stopped()

    async def _nap(self, until: pendulum.DateTime) -> None:
        """Sleep until `until`, or until one of the claimed runs ends (its slot is
        free: the next pass settles it and claims another at once)."""
        handles = [claim.handle for claim in self.claims.values()]
        async with anyio.create_task_group() as group:

            async def wake_at(wait: Awaitable[object]) -> None:
                await wait
                group.cancel_scope.cancel()

            group.start_soon(wake_at, self.time.sleep_until(until))
            for handle in handles:
                group.start_soon(wake_at, handle.wait())

    async def drain(self) -> None:
        """Wait up to `grace` for the running runs; then stop the rest and give them
        back, uncounted as crashes, for any worker to resume."""
        await self._wait_until(self.time.now() + self.grace)
        await self.reap()
        if not self.claims:
            return
        for claim in self.claims.values():
            logger.warning("stopping run %s after the %s s grace period",
                           claim.run.id, self.grace.total_seconds())  # fmt: skip
            claim.handle.terminate()
        if not await self._wait_until(self.time.now() + timedelta(seconds=5)):
            for claim in self.claims.values():
                claim.handle.kill()
            await self._wait_until(self.time.now() + timedelta(seconds=5))
        stopped = list(self.claims.values())
        self.claims.clear()
        for claim in stopped:
            await self.settle(
                claim.run.id, claim.token, "stopped after the grace period"
            )
        self.settled += len(stopped)

    async def _wait_until(self, deadline: pendulum.DateTime) -> bool:
        """Wait for every claimed run's process to end, or until `deadline`; return
        whether they all ended."""
        handles = [claim.handle for claim in self.claims.values()]
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:

                async def wait_all() -> None:
                    for handle in handles:
                        await handle.wait()
                    group.cancel_scope.cancel()

                async def timer() -> None:
                    await self.time.sleep_until(deadline)
                    scope.cancel()

                group.start_soon(wait_all)
                group.start_soon(timer)
        return all(handle.returncode is not None for handle in handles)
