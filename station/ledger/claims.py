"""Claims: a row taken for one device, its image recorded before the first byte is written,
then completed (the MAC bound for good) or failed.

Every step is one short write transaction; the schema's unique indexes make two stations
taking one row, or one device two rows, impossible. A step on an attempt that is no longer
active (recovered by another station after its lease ran out) is refused, so a station cut off
from the database never records over what the line decided meanwhile.
May import: station.errors, station.ledger.connection/records/sql.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from station.ledger import sql
from station.ledger.connection import wall_time
from station.ledger.records import (
    Claim,
    ClaimLost,
    ClaimRefused,
    ClaimTarget,
    LedgerOffline,
    attempt_record,
    row_record,
    state_after,
)
from station.ledger.recovery import Recovery


class Claims(Recovery):
    """Claim, record and finish attempts (each claim held under its run's lease)."""

    def _gone(self, claim: Claim) -> ClaimLost:
        return ClaimLost(
            str(self.path),
            claim.row_index,
            "this attempt is no longer active (recovered or cancelled: its station's lease ran "
            "out, or the database was out of reach); nothing more is recorded for it",
        )

    @contextmanager
    def _step(self, claim: Claim, *, last: bool = False) -> Iterator[None]:
        """One step of a claim; the claim is let go after its ``last`` step, or when a step
        loses the connection (then it is recovered by the normal rules if still active)."""
        try:
            yield
        except ClaimLost:
            self._unhold(claim.attempt_id)
            raise
        except LedgerOffline:
            self._unhold(claim.attempt_id, lost=True)
            raise
        except ClaimRefused:
            self._unhold(claim.attempt_id)
            raise
        if last:
            self._unhold(claim.attempt_id)

    # --- claims ------------------------------------------------------------------------------
    def claim_next(
        self,
        *,
        mac: str,
        port: str,
        slot: str = "",
        chip: str = "",
        operator: str = "",
        run_id: str = "",
    ) -> Claim | None:
        """Claim the next pending row for device ``mac``; None when no pending row is left."""
        kw: dict[str, Any] = dict(
            mac=mac, port=port, slot=slot, chip=chip, operator=operator, run_id=run_id
        )
        claim = self._claim(**kw)
        if claim is None and self.recover_expired():  # the line's leftovers, once expired
            claim = self._claim(**kw)
        return claim

    def claim_row(
        self,
        index: int,
        *,
        mac: str,
        port: str,
        slot: str = "",
        chip: str = "",
        operator: str = "",
        run_id: str = "",
    ) -> Claim:
        """Claim one row: pending, or failed/done on this same device (retry/rework)."""
        claim = self._claim(
            mac=mac,
            port=port,
            slot=slot,
            chip=chip,
            operator=operator,
            run_id=run_id,
            row_index=index,
        )
        assert claim is not None
        return claim

    def _claim(
        self,
        *,
        mac: str,
        port: str,
        slot: str = "",
        chip: str = "",
        operator: str = "",
        run_id: str = "",
        row_index: int | None = None,
    ) -> Claim | None:
        """Claim a row for the device ``mac`` on ``port``; None when no pending row is left.

        Without ``row_index`` the next pending row is taken. With it (a scan, an assignment, a
        retry or a rework): a pending row, a failed row of this same device (retry) or a done
        row of this same device (rework); anything else is refused with ClaimRefused.
        """
        if self._binder is not None:  # the lot is bound to this ledger before its first claim
            self._binder()
            self._binder = None
        now = wall_time()
        d = self.dialect
        attempt_id: int | None = None
        try:
            with self._write() as c:
                if row_index is None:
                    held = c.execute(d.sql(sql.ROW_BY_MAC), (self._lot, mac)).fetchone()
                    if held is not None:
                        r = row_record(held)
                        raise ClaimRefused(
                            str(self.path),
                            r.index,
                            f"device {mac} already holds this row ({r.state})",
                        )
                    found = c.execute(d.claim_next(), (self._lot,)).fetchone()
                    if found is None:
                        return None
                    index, kind = int(self._scalar(found)), "new"
                else:
                    found = c.execute(d.claim_row(), (self._lot, row_index)).fetchone()
                    if found is None:
                        raise ClaimRefused(str(self.path), row_index, "no such row in this lot")
                    target = ClaimTarget(*found)
                    index = row_index
                    kind = self._claim_kind(row_index, target.state, target.mac, mac)
                attempt_id = c.execute(
                    d.sql(sql.ATTEMPT_INSERT),
                    (
                        self._lot,
                        index,
                        kind,
                        port,
                        slot,
                        mac,
                        chip,
                        operator,
                        self.station_id,
                        run_id,
                        now,
                    ),
                ).fetchone()[0]
                self._hold(attempt_id, run_id)  # before the commit: never taken for an orphan
                n = c.execute(
                    d.sql(sql.CLAIM_ROW_UPDATE), (mac, port, attempt_id, now, self._lot, index, mac)
                ).rowcount
                if n != 1:
                    raise ClaimRefused(str(self.path), index, "the row changed while claiming it")
                self._note(
                    c,
                    index,
                    "claimed",
                    "claim",
                    mac=mac,
                    attempt=attempt_id,
                    kind=kind,
                    port=port,
                    chip=chip,
                    run=run_id,
                    operator=operator,
                )
        except LedgerOffline:
            if attempt_id is not None:
                self._unhold(attempt_id, lost=True)
            raise
        except BaseException as err:
            if attempt_id is not None:
                self._unhold(attempt_id)
            if not isinstance(err, self._integrity):
                raise
            raise ClaimRefused(
                str(self.path),
                row_index,
                f"refused by the ledger's rules ({err}): device {mac} already "
                "holds another row or the row is in progress",
            ) from None
        return Claim(attempt_id=attempt_id, row_index=index, kind=kind, mac=mac, port=port)

    def _claim_kind(self, index: int, state: str, row_mac: str | None, mac: str) -> str:
        where = str(self.path)
        if state == "pending":
            return "new"
        if state in ("claimed", "written"):
            raise ClaimRefused(where, index, f"is being written to {row_mac} right now")
        if row_mac is None:
            raise ClaimRefused(
                where,
                index,
                "failed on no device (its data could not be built); fix the lot, "
                "then have a supervisor release it",
            )
        if row_mac != mac:
            what = "done" if state == "done" else "failed"
            raise ClaimRefused(
                where,
                index,
                f"is {what} on device {row_mac}; it can only go to that device, unless a "
                "supervisor releases it",
            )
        return "rework" if state == "done" else "retry"

    def lost(self, claim: Claim) -> None:
        """The connection went while the claim was in progress but not in one of its steps
        (a read after it was taken, say): its fate is lost as a step's would be. It is let go
        (no longer renewed) and recovered as this station's orphan once the database is back;
        a claim held on would be renewed for ever and its row stay claimed. Idempotent."""
        self._unhold(claim.attempt_id, lost=True)

    def set_image(self, claim: Claim, image_sha256: str) -> None:
        """Record the image hash before the first byte is written (durably, in the ledger and
        the journal)."""
        with self._step(claim), self._write() as c:
            d = self.dialect
            if (
                c.execute(d.sql(sql.ATTEMPT_SET_IMAGE), (image_sha256, claim.attempt_id)).rowcount
                != 1
            ):
                raise self._gone(claim)
            c.execute(
                self.dialect.sql(sql.ROW_SET_IMAGE),
                (image_sha256, self._lot, claim.row_index, claim.attempt_id),
            )
            self._note(
                c,
                claim.row_index,
                "claimed",
                "image",
                mac=claim.mac,
                sha256=image_sha256,
                attempt=claim.attempt_id,
            )

    def mark_written(
        self, claim: Claim, timings: Mapping[str, float], *, wrote: bool = True
    ) -> None:
        """The image is on the device (MD5 checked); verification comes next. ``wrote``: False
        when the device held it already and nothing was written (the attempt says so)."""
        with self._step(claim), self._write() as c:
            if wrote:
                n = c.execute(
                    self.dialect.sql(sql.ATTEMPT_SET_WROTE),
                    (json.dumps(dict(timings)), claim.attempt_id),
                ).rowcount
            else:
                n = c.execute(
                    self.dialect.sql(sql.ATTEMPT_STILL_ACTIVE), (claim.attempt_id,)
                ).rowcount
            if n != 1:
                raise self._gone(claim)
            c.execute(
                self.dialect.sql(sql.ROW_WRITTEN),
                (wall_time(), self._lot, claim.row_index, claim.attempt_id),
            )
            self._note(
                c,
                claim.row_index,
                "written",
                "written" if wrote else "held",
                mac=claim.mac,
                attempt=claim.attempt_id,
            )

    def complete(self, claim: Claim, timings: Mapping[str, float], chip: str = "") -> None:
        """The device verifiably holds the row: bind the MAC to it for good."""
        now = wall_time()
        d = self.dialect
        with self._step(claim, last=True), self._write() as c:
            t = c.execute(d.sql(sql.ATTEMPT_GET + " WHERE id = ?"), (claim.attempt_id,)).fetchone()
            a = attempt_record(t) if t is not None else None
            merged = {**a.timings, **timings} if a is not None else dict(timings)
            n = c.execute(
                d.sql(sql.ATTEMPT_FINISH),
                ("done", "", json.dumps(merged), now, claim.attempt_id),
            ).rowcount
            if n != 1:
                raise ClaimLost(
                    str(self.path),
                    claim.row_index,
                    "this attempt is no longer active (recovered or cancelled)",
                )
            bound = c.execute(d.sql(sql.DEVICE_BOUND), (self._lot, claim.row_index)).fetchone()
            if bound is None:
                c.execute(
                    d.sql(sql.DEVICE_BIND), (self._lot, claim.mac, chip, claim.row_index, now)
                )
            elif self._scalar(bound) != claim.mac:
                raise ClaimRefused(
                    str(self.path),
                    claim.row_index,
                    f"is bound to device {self._scalar(bound)}, not {claim.mac}",
                )
            c.execute(d.sql(sql.ROW_DONE), (now, self._lot, claim.row_index, claim.attempt_id))
            self._note(
                c,
                claim.row_index,
                "done",
                "done",
                mac=claim.mac,
                sha256=a.image_sha256 if a is not None else None,
                attempt=claim.attempt_id,
                chip=chip,
            )

    def fail(
        self,
        claim: Claim,
        reason: str,
        timings: Mapping[str, float] | None = None,
        *,
        result: str = "failed",
        bad_row: bool = False,
    ) -> str:
        """End an attempt without success; returns the row's new state.

        A row whose write may have started stays failed on that device (retry on the same
        device); a row nothing was written for returns to where it was — unless the row itself
        is at fault (``bad_row``: its image cannot be built), then it is failed on no device and
        waits for a supervisor's release once the lot is fixed.
        """
        now = wall_time()
        d = self.dialect
        with self._step(claim, last=True), self._write() as c:
            t = c.execute(d.sql(sql.ATTEMPT_GET + " WHERE id = ?"), (claim.attempt_id,)).fetchone()
            a = attempt_record(t) if t is not None else None
            if a is None or a.result is not None:
                return row_record(
                    c.execute(d.sql(sql.ROW_GET), (self._lot, claim.row_index)).fetchone()
                ).state
            merged = {**a.timings, **(timings or {})}
            c.execute(
                d.sql(sql.ATTEMPT_FINISH),
                (result, reason, json.dumps(merged), now, claim.attempt_id),
            )
            state, mac = state_after(a)
            if bad_row and state == "pending":
                state = "failed"
            c.execute(
                d.sql(sql.ROW_BACK_TO),
                (
                    state,
                    mac,
                    reason if state == "failed" else "",
                    now,
                    self._lot,
                    claim.row_index,
                    claim.attempt_id,
                ),
            )
            self._note(
                c,
                claim.row_index,
                state,
                result,
                mac=mac,
                sha256=a.image_sha256,
                attempt=claim.attempt_id,
                reason=reason,
            )
        return state
