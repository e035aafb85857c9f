"""The unit pipeline's security step: a lot's ``[security]`` recipe on each unit's connection.

The orchestrator calls it at three points of a unit (see docs/security.md):

1. :meth:`SecurityStep.check_board`, while checking the device and before a row is claimed:
   the eFuses are read and a board holding a foreign key or another recipe is refused untouched,
   with the reason (the orchestrator's :class:`DeviceRefused`);
2. :meth:`SecurityStep.regions`, once the unit is known: its per-device keys are made (or read
   back) and escrowed durably (0600, the lot's key folder) with their SHA-256 in the ledger, and
   the regions the lot writes are encrypted on the host where the recipe says so;
3. :meth:`SecurityStep.burn`, after the regions were written *and* verified by read-back: the
   burn steps in the documented order, then the final lock, then (if the lot says so) the host
   copies of the unit's keys are deleted.

Every step is recorded in the ledger (:class:`~station.ledger.security_steps.LedgerJournal`)
as begun before its eFuses are touched and done after they read back right, so a board that
comes back after a crash or an unplug continues where it stopped; the eFuses are read first,
and nothing is burned twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from station.errors import StationError

if TYPE_CHECKING:
    from station.flashing import WriteRegion
    from station.production.lot import Lot
    from station.security import Provisioner, Step

PHASE = "burning eFuses"  # the port phase (station.flashing.PHASES)


class SecurityFailed(Exception):
    """The unit's recipe could not be completed (a burn that did not read back, a board that
    turned out foreign once its unit was known): the unit fails with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BoardNotForLot(Exception):
    """The board's eFuses do not fit the lot: refused before anything was written or burned."""


def for_lot(lot: Lot) -> SecurityStep | None:
    """The lot's security step, or None when the lot has no ``[security]`` table."""
    settings = getattr(lot, "security", None)
    if settings is None:
        return None
    return SecurityStep(lot)


class SecurityStep:
    """One lot's recipe, ready for its units (thread-safe: one call per port's connection)."""

    def __init__(self, lot: Lot) -> None:
        from station.ledger.security_steps import LedgerJournal
        from station.security import Provisioner

        self.lot = lot
        self.journal = LedgerJournal(lot.ledger)
        settings = lot.security
        assert settings is not None
        self.provisioner: Provisioner = Provisioner(settings, self.journal)
        self.plan = self.provisioner.plan

    # -- 1. before the claim ---------------------------------------------------------------------
    def check_board(self, esp: Any, mac: str) -> None:
        """Read the board's eFuses; BoardNotForLot (with every reason) if they are foreign."""
        from station.security import BoardRefused

        if esp is None:  # e.g. a session in another process (the window's device host)
            raise BoardNotForLot(
                f"{mac}: this connection cannot burn eFuses (no esptool loader in this "
                "process); the device was left untouched"
            )
        unit = self._unit_of(mac)
        try:
            self.provisioner.check_board(esp, mac, unit)
        except BoardRefused as err:
            raise BoardNotForLot(
                f"{mac}: eFuses do not fit lot {self.lot.name}'s recipe: "
                + "; ".join(err.reasons)
                + " — the board was left untouched"
            ) from None
        except StationError as err:  # the eFuses cannot be read
            raise BoardNotForLot(f"{mac}: " + "; ".join(p.message for p in err.problems)) from None

    def _unit_of(self, mac: str) -> str | None:
        """The unit whose steps were recorded on this device, else the row it is bound to."""
        unit = self.journal.devices().get(mac)
        if unit is not None:
            return unit
        row = self.lot.ledger.row_of_mac(mac)
        return row.unit_id if row is not None else None

    def table_unreadable(self) -> bool:
        """The device's partition table is flash-encrypted once a unit of this lot was written
        (read back raw, it is noise): the lot's firmware writes the table to every unit, so
        the orchestrator does not compare it."""
        fw = self.lot.firmware
        return self.provisioner.settings.has("flash_encryption") and (
            fw is not None and fw.writes_table
        )

    # -- 2. the unit's keys and regions --------------------------------------------------------
    def regions(self, unit: str, mac: str, regions: list[WriteRegion]) -> list[WriteRegion]:
        """The unit's keys escrowed (hash in the ledger), its regions encrypted on the host
        where the recipe says so. SecurityFailed if the board holds another unit's keys."""
        recorded = self.journal.devices().get(mac)
        if recorded is not None and recorded != unit:
            raise SecurityFailed(
                f"the board holds eFuse steps of unit {recorded}, not {unit}: it can only "
                f"be unit {recorded} (a supervisor released its row?)"
            )
        try:
            keys = self.provisioner.keys(unit)
        except StationError as err:
            raise SecurityFailed("; ".join(str(p) for p in err.problems)) from None
        fw = self.lot.firmware
        bootloader = (
            fw.args.bootloader_offset
            if fw is not None and fw.args.bootloader_offset is not None
            else self.lot.table.bootloader_offset
        )
        table_at = (fw.args.table_offset if fw is not None else None) or self.lot.table.table_offset
        out = self.provisioner.encrypt(
            keys, regions, self.lot.table.partitions, bootloader=bootloader, table=table_at
        )
        return list(out)

    # -- 3. after the verification ---------------------------------------------------------------
    def burn(
        self,
        esp: Any,
        unit: str,
        mac: str,
        on_step: Callable[[Step], None] | None = None,
    ) -> tuple[int, int]:
        """Burn the unit's steps, then the final lock, then delete the host key copies if the
        lot says so; returns (steps burned now, steps found done). SecurityFailed on any
        refusal or failed burn (the eFuses and the ledger say how far it got)."""
        from station.security import BoardRefused, BurnFailed

        def note(step: Step, _state: object) -> None:
            if on_step is not None:
                on_step(step)

        try:
            outcomes = self.provisioner.burn(esp, unit, mac, on_step=note)
            outcomes += self.provisioner.lock(esp, unit, mac, on_step=note)
        except BoardRefused as err:
            raise SecurityFailed("refused: " + "; ".join(err.reasons)) from None
        except BurnFailed as err:
            raise SecurityFailed(
                f"burning {err.step.id} failed: " + "; ".join(p.message for p in err.problems)
            ) from None
        except StationError as err:
            raise SecurityFailed("; ".join(p.message for p in err.problems)) from None
        self.provisioner.verified(unit)
        burned = sum(1 for o in outcomes if o.burned)
        return burned, len(outcomes) - burned

    def burn_on_port(
        self,
        esp: Any,
        unit: str,
        mac: str,
        *,
        check_cancel: Callable[[], None],
        progress: Callable[[str, int, int], None],
    ) -> str:
        """:meth:`burn` for a port: ``check_cancel`` before each step (a burn is never cut
        short), ``progress(step id, n, total)``; returns the line for the log."""
        steps = self.plan.steps
        total = len(steps)

        def on_step(step: Any) -> None:
            check_cancel()
            progress(step.id, 1 + steps.index(step), total)

        burned, found = self.burn(esp, unit, mac, on_step)
        return f"unit {unit} on {mac}: {burned} eFuse step(s) burned" + (
            f", {found} found done already" if found else ""
        )

    def describe(self) -> str:
        """One line for the log when the lot opens."""
        n = len(self.plan.steps)
        irreversible = sum(1 for s in self.plan.steps if s.irreversible)
        s = self.provisioner.settings
        return (
            f"security: {', '.join(s.recipes)} ({s.mode} mode) on {s.chip}: {n} eFuse steps "
            f"per unit, {irreversible} irreversible"
        )


# --- enabling a security lot (the window: engineer only, once per recipe, audited) ----------
ENABLE_ACTION = "security-enable"


def recipe_id(lot: Lot) -> str:
    """A short hash of the lot's plan (chip, mode, every step and digest): enabling is for
    this exact recipe; a changed key or recipe needs enabling again."""
    import hashlib

    from station.security import build_plan, chip_caps

    settings = lot.security
    assert settings is not None
    caps = chip_caps(settings.chip)
    assert caps is not None
    return hashlib.sha256(build_plan(settings, caps).text().encode()).hexdigest()[:16]


def recipe_text(lot: Lot) -> str:
    """The lot's recipe as the engineer reads it: every step, irreversible ones marked."""
    from station.security import build_plan, chip_caps

    settings = lot.security
    assert settings is not None
    caps = chip_caps(settings.chip)
    assert caps is not None
    plan = build_plan(settings, caps)
    irreversible = sum(1 for s in plan.steps if s.irreversible)
    return (
        f"recipes: {', '.join(settings.recipes)}\n{plan.text()}\n"
        f"{irreversible} of {len(plan.steps)} steps cannot be undone. Keys: "
        f"{settings.key_folder}"
        + (" (host copies deleted once a unit is verified)" if settings.delete_keys_after_verify
           else "")
    )  # fmt: skip


def enabled(lot: Lot) -> bool:
    """An engineer enabled this lot's exact recipe on this ledger (see :func:`enable`)."""
    rid = recipe_id(lot)
    return any(
        a.action == ENABLE_ACTION and a.detail.startswith(f"recipe {rid}")
        for a in lot.ledger.audit_log()
    )


def enable(lot: Lot, operator: str) -> None:
    """Record that ``operator`` (an engineer) enabled the lot's eFuse recipe (audit log)."""
    settings = lot.security
    assert settings is not None
    lot.ledger.audit(
        ENABLE_ACTION,
        f"recipe {recipe_id(lot)}: {', '.join(settings.recipes)} ({settings.mode} mode, "
        f"{settings.chip})",
        operator,
    )
