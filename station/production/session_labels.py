"""The station session's label policy: a unit that passes gets its label when the station
prints on pass; Reprint prints a flashed unit's label again, or says why it cannot.

May import: station.labels, station.production.session's records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from station.errors import Problem
from station.labels import PRINTABLE_STATES, LabelJob, LabelOutcome, LabelService, lot_template

if TYPE_CHECKING:
    from station.production.orchestrator import PortUpdate
    from station.production.session import Outcome, StationSession


class LabelPolicy:
    """The label service of a session and the rules of when it prints."""

    def __init__(self, session: StationSession) -> None:
        self.session = session
        self.service = LabelService(on_done=self._done)
        self.template: Any | None = None  # the open lot's checked template (None: no labels)
        self.problems: list[Problem] = []

    def set_lot(self, lot: Any | None) -> None:
        """Check the lot's template (a lot with problems prints no labels; they are listed)."""
        template: Any | None = None
        problems: list[Problem] = []
        if lot is not None:
            try:
                template, problems = lot_template(lot)
            except ImportError:  # an installation without the label renderer
                pass
        self.template, self.problems = template, list(problems)
        self.service.set_template(lot, template)

    def stop(self) -> None:
        """Print what is queued (audited) before the ledger closes."""
        self.service.stop()
        self.set_lot(None)

    def goes_to_printer(self) -> bool:
        """Reprint prints (a template and an output, or template problems to report); else a
        front end shows the label instead (what would be printed)."""
        if self.session.lot is None:
            return False
        output = self.session.config.label_output
        return bool(self.problems) or bool(output and self.template is not None)

    def reprint(self, rec: Any | None, *, what: str = "", output: str | None = None) -> Outcome:
        from station.production.session import Outcome

        session = self.session
        name = what or (rec.unit_id if rec is not None else "") or "unit"
        output = session.config.label_output if output is None else output
        lot = session.lot
        why = ""
        if lot is None:
            why = "no lot is open"
        elif rec is None:
            why = "not in this lot"
        elif rec.state not in PRINTABLE_STATES:
            why = f"not flashed yet ({rec.state}): no label to reprint"
        elif self.template is None:
            why = (
                "the lot's label template has problems (see Problems)"
                if self.problems
                else "this lot has no label ([label] in lot.toml)"
            )
        elif not output:
            why = "no label output is set (Settings, engineer mode)"
        if why or rec is None or lot is None:
            return Outcome(False, f"✘ {name}: {why}")
        self.service.submit(LabelJob(lot, rec.index, output, True, session.config.operator))
        return Outcome(
            True, f"✔ {rec.unit_id or name}: label reprint sent to the printer", row_index=rec.index
        )

    def on_pass(self, event: PortUpdate) -> None:
        """A unit passed: its label, when the station prints on pass."""
        c = self.session.config
        lot = self.session.lot
        if not (c.print_on_pass and c.label_output) or lot is None or self.template is None:
            return  # (template problems were reported when the lot opened)
        row = event.row_index if event.row_index is not None else 0
        self.service.submit(LabelJob(lot, row, c.label_output, False, c.operator, event.port))

    def _done(self, outcome: LabelOutcome) -> None:
        self.session.emit(outcome)
