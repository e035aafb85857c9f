"""Runs and recovery: which station is working, and what becomes of the claims of one that
stopped without finishing them (killed, crashed, cut off).

A run is its host, PID and process start time (psutil tells, on the same host, whether it is
still alive) and, on a shared database, a lease renewed by the running station and measured with
the database's clock: any station recovers the claims of a run whose lease ran out. A supervisor
releases rows by hand.
May import: station.errors, station.ledger.connection/records/sql.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

from station.ledger import sql
from station.ledger.connection import RECONNECT_BACKOFF, LedgerConnection, wall_time
from station.ledger.records import (
    ClaimOfAnotherStation,
    ClaimRefused,
    LedgerOffline,
    Recovered,
    RunRow,
    attempt_record,
    row_record,
    state_after,
)


def process_started(pid: int | None = None) -> float | None:
    """When a process started (seconds since the epoch), None if there is no such process.

    With the host and the PID it identifies a run: after a reboot the same PID is another
    process, with another start time (psutil reads it on Linux, Windows and macOS)."""
    import psutil

    try:
        return float(psutil.Process(os.getpid() if pid is None else pid).create_time())
    except (psutil.Error, OSError):
        return None


def run_alive(pid: int, started: float | None) -> bool:
    """Whether the run's process (this machine) is still the one that started the run."""
    if pid <= 0:
        return False
    now = process_started(pid)
    if now is None:
        return False
    if started is None:  # a run recorded before start times were: the PID is all there is
        return True
    return abs(now - started) < 1.0


# runs started by this process and not yet ended: a run of our own pid not in here is dead
_LIVE_RUNS: set[str] = set()
_LIVE_RUNS_LOCK = threading.Lock()


class Recovery(LedgerConnection):
    """Start and end runs; recover the claims of dead runs; release rows (supervisor)."""

    # --- runs and crash recovery -------------------------------------------------------------
    def start_run(self) -> str:
        """Register a production run of this process; its claims are recovered if it dies."""
        run_id = uuid.uuid4().hex
        with _LIVE_RUNS_LOCK:
            _LIVE_RUNS.add(run_id)
        with self._write() as c:
            c.execute(
                self.dialect.sql(sql.RUN_INSERT),
                (
                    run_id,
                    self._lot,
                    self.station_id,
                    socket.gethostname(),
                    os.getpid(),
                    wall_time(),
                    process_started(),
                    self.lease,
                    self.lease,
                ),
            )
        with self._held_lock:
            self._my_runs.add(run_id)
        self._hold(None, run_id)  # its lease is renewed, and the line watched, while it runs
        return run_id

    def end_run(self, run_id: str) -> None:
        """End a run. With the database offline the run stays open in it: its lease runs
        out, and its claims (if any) are recovered by whichever station looks first."""
        with self._held_lock:
            self._my_runs.discard(run_id)
            self._renew_wake.set()
        with _LIVE_RUNS_LOCK:
            _LIVE_RUNS.discard(run_id)
        try:
            with self._write() as c:
                c.execute(self.dialect.sql(sql.RUN_END), (wall_time(), run_id))
        except LedgerOffline:
            pass

    # --- leases ------------------------------------------------------------------------------
    def _hold(self, attempt_id: int | None, run_id: str) -> None:
        """A claim of this ledger (before its commit): its run's lease is renewed while held
        (None: a run started; renewed while it runs)."""
        with self._held_lock:
            if attempt_id is not None:
                self._held[attempt_id] = run_id
            if self._renewer is None and run_id and not self._closed:
                self._renew_stop.clear()
                self._renew_wake.clear()
                self._renewer = threading.Thread(
                    target=self._renew_loop, name="ledger lease", daemon=True
                )
                self._renewer.start()

    def _unhold(self, attempt_id: int, *, lost: bool = False) -> None:
        """A claim that ended; ``lost``: its last step's fate is not known (the connection
        went): if it is still active, it is recovered as an orphan once the database is back."""
        with self._held_lock:
            self._held.pop(attempt_id, None)
            if lost:
                self._orphans = True
            if not self._held and not self._orphans and not self._my_runs:
                self._renew_wake.set()  # nothing left to renew: let the renewer end now

    def _renew_loop(self) -> None:
        """Renew the leases of this ledger's runs and of the runs whose claims it holds, every
        third of the lease, and recover the line's expired claims meanwhile (so that a
        station waiting for its next board still takes back a dead station's claims); back
        off while offline."""
        pause = self.lease / 3
        tries = 0
        try:
            while True:
                self._renew_wake.wait(pause)
                with self._held_lock:
                    self._renew_wake.clear()
                    runs = (set(self._held.values()) | self._my_runs) - {""}
                    if self._renew_stop.is_set() or (not runs and not self._orphans):
                        self._renewer = None
                        return
                try:
                    if runs:
                        with self._write() as c:
                            for run in sorted(runs):
                                c.execute(self.dialect.sql(sql.RUN_RENEW), (run,))
                    self.recover_expired(look_closer=False)
                    pause, tries = self.lease / 3, 0
                except LedgerOffline:
                    pause = RECONNECT_BACKOFF[min(tries, len(RECONNECT_BACKOFF) - 1)]
                    tries += 1
                except Exception:
                    pause = self.lease / 3
        finally:
            with self._held_lock:
                if self._renewer is threading.current_thread():
                    self._renewer = None
            self.release_thread()

    def wait_online(self, cancel: threading.Event | None = None) -> bool:
        """Wait until the database answers again (backoff); then recover this ledger's claims
        whose last step was lost with the connection. False if ``cancel`` was set first."""
        if not super().wait_online(cancel):
            return False
        try:
            self.recover_expired(look_closer=False)
        except LedgerOffline:
            return self.wait_online(cancel)
        return True

    def recover_expired(self, *, look_closer: bool = True) -> list[Recovered]:
        """Recover the claims the line left behind, if there are any: those of runs whose
        lease ran out or that ended, this ledger's own orphans, and (``look_closer``) those of
        dead processes of this host."""
        if self.lot_id is None:
            return []
        # one at a time: a caller that finds nothing left to do must not go on while another
        # one's recovery (which took the orphans flag) is not committed yet; a port back online
        # found its own lost claim still active ("being written right now") and gave up on it
        with self._recover_lock:
            with self._held_lock:
                orphans = self._orphans
            expired = int(self._one(sql.CLAIMS_EXPIRED, (self._lot,)))
            if not expired and not orphans and not look_closer:
                return []
            if not expired:
                active = self._q(sql.ATTEMPTS_ACTIVE, (self._lot,))
                with self._held_lock:
                    ours = set(self._held)
                if all(attempt_record(t).id in ours for t in active):
                    return []
            with self._held_lock:
                self._orphans = False
            try:
                return self.recover(self._lapsed)
            except BaseException:
                if orphans:  # not recovered (offline again): the next look tries again
                    with self._held_lock:
                        self._orphans = True
                raise

    def _run_dead(self, c: Any, run_id: str) -> bool:
        return self._run_state(c, run_id) == "dead"

    def _run_state(self, c: Any, run_id: str) -> str:
        """``dead``, ``alive`` or ``elsewhere`` (a run of another host: only it can tell).

        A run is its host, PID and the start time of its process: a PID reused by another
        process (e.g. after a reboot) is not the run."""
        found = c.execute(self.dialect.sql(sql.RUN_GET), (run_id,)).fetchone()
        return "dead" if found is None else self._judge(run_id, RunRow(*found))

    def _lapsed(self, run_id: str) -> bool:
        """Whether a run that the ledger knows is over: its claims are anyone's to recover (a
        claim of no known run is left alone here; an explicit recover() takes it)."""
        found = self._q(sql.RUN_GET, (run_id,))
        return bool(found) and self._judge(run_id, RunRow(*found[0])) == "dead"

    def _judge(self, run_id: str, run: RunRow) -> str:
        host, pid, ended_at, proc_started = run.host, run.pid, run.ended_at, run.proc_started
        if ended_at is not None:
            return "dead"
        if run.lease_until is not None and run.lease_until < run.db_now:
            return "dead"  # its lease ran out: whatever its station does, the claims are free
        if host != socket.gethostname():
            return "elsewhere"
        if pid == os.getpid():
            with _LIVE_RUNS_LOCK:
                return "alive" if run_id in _LIVE_RUNS else "dead"
        return "alive" if run_alive(pid, proc_started) else "dead"

    def run_host(self, run_id: str) -> tuple[str, int]:
        """The host and PID of a run, for messages."""
        found = self._q(sql.RUN_GET, (run_id,))
        if not found:
            return "?", 0
        run = RunRow(*found[0])
        return str(run.host), int(run.pid)

    def recover(self, is_dead: Callable[[str], bool] | None = None) -> list[Recovered]:
        """Resolve claims left by dead runs (a crashed or killed station).

        The attempt is marked interrupted. If nothing was sent to the device yet, the row goes
        back to pending. If writing may have started, the row stays with that device's MAC as
        failed ("interrupted"), so no other device can get the same data; when the device is
        seen again its factory region is compared with the image hash and the row completed,
        or rewritten. A supervisor can release it if the device is lost.
        """
        out = []
        now = wall_time()
        with self._write() as c:
            active = [
                attempt_record(t)
                for t in c.execute(self.dialect.sql(sql.ATTEMPTS_ACTIVE), (self._lot,)).fetchall()
            ]
            with self._held_lock:
                ours = set(self._held)
            for a in active:
                orphan = a.run_id in self._my_runs and a.id not in ours
                dead = orphan or (is_dead(a.run_id) if is_dead else self._run_dead(c, a.run_id))
                if not dead:
                    continue
                reason = (
                    f"interrupted: the station stopped during this attempt (run {a.run_id[:8]})"
                )
                c.execute(
                    self.dialect.sql(sql.ATTEMPT_FINISH),
                    ("interrupted", reason, json.dumps(dict(a.timings)), now, a.id),
                )
                state, mac = state_after(a)
                if state == "failed":
                    reason = (
                        f"interrupted while writing to {a.mac}; it is checked when that "
                        "device is seen again (or release the row)"
                    )
                c.execute(
                    self.dialect.sql(sql.ROW_BACK_TO),
                    (
                        state,
                        mac,
                        reason if state == "failed" else "",
                        now,
                        self._lot,
                        a.row_index,
                        a.id,
                    ),
                )
                self._note(
                    c,
                    a.row_index,
                    state,
                    "interrupted",
                    mac=mac,
                    sha256=a.image_sha256,
                    attempt=a.id,
                    kind=a.kind,
                    port=a.port,
                    run=a.run_id,
                    reason=reason,
                )
                c.execute(
                    self.dialect.sql(sql.AUDIT_INSERT),
                    (
                        self._lot,
                        now,
                        "recover",
                        f"row {a.row_index + 1}: attempt {a.id} on {a.port} ({a.mac}) "
                        f"interrupted; row {state}",
                        "",
                        self.station_id,
                    ),
                )
                out.append(Recovered(a, state))
        return out

    def release(
        self, row_index: int, reason: str, operator: str, *, station_gone: bool = False
    ) -> None:
        """Supervisor override: the row goes back to pending for another device (audited).

        A done or failed row; or a row claimed by a run that is not alive any more (a crashed
        station, a PID reused after a reboot). A claim of a run on another host is only
        released with ``station_gone`` (that station is switched off or gone: only it could
        tell whether its run is alive)."""
        if not reason.strip() or not operator.strip():
            raise ClaimRefused(
                str(self.path), row_index, "a release needs the supervisor's name and a reason"
            )
        now = wall_time()
        d = self.dialect
        with self._write() as c:
            found = c.execute(d.sql(sql.ROW_GET), (self._lot, row_index)).fetchone()
            if found is None:
                raise ClaimRefused(str(self.path), row_index, "no such row in this lot")
            r = row_record(found)
            was = r.state
            if r.state in ("claimed", "written"):
                t = c.execute(d.sql(sql.ATTEMPT_OF_ROW_ACTIVE), (self._lot, row_index)).fetchone()
                if t is not None:
                    a = attempt_record(t)
                    run = self._run_state(c, a.run_id)
                    found = c.execute(d.sql(sql.RUN_GET), (a.run_id,)).fetchone()
                    host = RunRow(*found) if found is not None else None
                    who = f"run on {host.host}, PID {host.pid}" if host else "a run"
                    if run == "alive":
                        raise ClaimRefused(
                            str(self.path),
                            row_index,
                            f"is being written to {r.mac} right now ({who}, alive); stop that "
                            "station first",
                        )
                    if run == "elsewhere" and not station_gone:
                        raise ClaimOfAnotherStation(
                            str(self.path),
                            row_index,
                            f"is claimed by a {who}; release it on that station, or, if that "
                            "station is switched off or gone, say so (--station-gone)",
                        )
                    c.execute(
                        d.sql(sql.ATTEMPT_FINISH),
                        (
                            "interrupted",
                            f"released by {operator}: {reason}",
                            json.dumps(dict(a.timings)),
                            now,
                            a.id,
                        ),
                    )
                    was = f"{r.state} by a {who} that is not alive"
            elif r.state not in ("done", "failed"):
                raise ClaimRefused(
                    str(self.path),
                    row_index,
                    f"is {r.state}; only done or failed rows, or claims of a station that "
                    "stopped, can be released",
                )
            c.execute(d.sql(sql.DEVICE_RELEASE), (now, reason, self._lot, row_index))
            c.execute(d.sql(sql.ROW_RELEASE), (f"released: {reason}", now, self._lot, row_index))
            self._note(
                c,
                row_index,
                "pending",
                "release",
                operator=operator,
                reason=f"released from {r.mac or 'no device'}: {reason}",
            )
            c.execute(
                d.sql(sql.AUDIT_INSERT),
                (
                    self._lot,
                    now,
                    "release",
                    f"row {row_index + 1} ({r.unit_id}) released from {r.mac} "
                    f"(was {was}): {reason}",
                    operator,
                    self.station_id,
                ),
            )

    def resync_row(self, index: int) -> None:
        """Journal a finished row's state again (its line was lost: a station killed between
        the ledger's commit and the journal's append)."""
        d = self.dialect
        with self._write() as c:
            r = row_record(c.execute(d.sql(sql.ROW_GET), (self._lot, index)).fetchone())
            tried = c.execute(d.sql(sql.ATTEMPTS_OF_ROW), (self._lot, index)).fetchall()
            a = attempt_record(tried[-1]) if tried else None
            if r.state in ("claimed", "written") or (a is not None and a.result is None):
                return  # in progress: its own lines follow
            self._note(
                c,
                index,
                r.state,
                a.result if a is not None and a.result else "release",
                mac=r.mac,
                sha256=a.image_sha256 if a is not None else None,
                attempt=a.id if a is not None else None,
                kind=a.kind if a is not None else "",
                port=a.port if a is not None else "",
                run=a.run_id if a is not None else "",
                reason=r.reason,
            )
