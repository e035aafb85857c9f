"""Widgets of the station window: the port card and the flash map."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from PySide6.QtCore import QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetrics,
    QHelpEvent,
    QPainter,
    QPaintEvent,
    QPen,
)
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStyle,
    QStyleOption,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from station.gui import theme
from station.gui.models import human_size
from station.gui.wording import elide_lines, for_operator


@dataclass(frozen=True)
class PortView:
    """What a port card shows: the latest PortUpdate plus this slot's counters."""

    port: str
    slot: str = ""
    state: str = "idle"
    phase: str = ""
    done: int = 0
    total: int = 0
    chip: str = ""
    mac: str = ""
    unit_id: str = ""
    row_index: int | None = None
    message: str = ""
    elapsed: float = 0.0
    received: float = 0.0  # time.monotonic() when the update arrived (0: never)
    next_unit: str = ""  # scanned for this port's next device while it works on another
    next_row_index: int | None = None
    passed_count: int = 0
    failed_count: int = 0
    ledger_offline: bool = False  # the ledger's database is away (shown on every card)

    @property
    def shown_state(self) -> str:
        """The state the card's colour and word show: the ledger's outage over the port's."""
        return "ledger" if self.ledger_offline else self.state

    @property
    def shown_message(self) -> str:
        return theme.LEDGER_OFFLINE_MESSAGE if self.ledger_offline else self.message

    @property
    def connecting_next(self) -> bool:
        """The port works but has no row yet (connecting, reading the device): the unit waiting
        for it is the one being flashed, so it is shown as the unit, not as the next one."""
        return (
            self.state == "busy"
            and self.row_index is None
            and bool(self.next_unit or self.next_row_index is not None)
        )

    @property
    def unit_text(self) -> str:
        """The unit on the port, as the card shows it ("–" for none)."""
        if self.connecting_next:
            return self.next_unit or f"row {(self.next_row_index or 0) + 1}"
        if self.unit_id:
            return self.unit_id
        return "–" if self.row_index is None else f"row {self.row_index + 1}"

    @property
    def next_text(self) -> str:
        """The unit scanned for the port's next device ("" for none)."""
        return "" if self.connecting_next else self.next_unit

    def with_update(self, update: Any) -> PortView:
        """This view after a production PortUpdate (counters are kept by the bridge)."""
        return replace(
            self,
            slot=update.slot or self.slot,
            state=update.state,
            phase=update.phase or "",
            done=update.done,
            total=update.total,
            chip=update.chip or self.chip,
            mac=update.mac or self.mac,
            unit_id=update.unit_id or "",
            row_index=update.row_index,
            message=update.message or "",
            elapsed=update.elapsed,
            next_unit=update.next_unit,
            next_row_index=update.next_row_index,
        )


def _scaled_font(base: QFont, factor: float, bold: bool = False) -> QFont:
    font = QFont(base)
    size = base.pointSizeF() if base.pointSizeF() > 0 else 10.0
    font.setPointSizeF(size * factor)
    font.setBold(bold)
    return font


# the facts an engineer copies (a MAC, a unit's ID) can be selected with the mouse; the rest
# are plain labels (a selectable label costs more to build and to update, and Phase and Elapsed
# change many times per unit)
SELECTABLE_FIELDS = frozenset({"Unit", "Next", "Chip", "MAC"})

# states in which a unit's clock runs (the orchestrator reports elapsed time only on events)
LIVE_STATES = frozenset({"busy"})


class _FactLabel(QLabel):
    """A fact on a card an engineer may select and copy (a MAC). A selectable label keeps its
    presses to itself: a press on it chooses the card all the same, and still selects.

    Not an event filter on the label: a filter is a Python call, under the GIL, for every
    event the label gets (each paint), on 4 labels of 32 cards while the ports flash."""

    def __init__(self, pressed: Callable[[], None]) -> None:
        super().__init__("–")
        self._pressed = pressed

    def mousePressEvent(self, event: Any) -> None:
        self._pressed()
        super().mousePressEvent(event)


class PortCard(QFrame):
    """One port: slot, port, a big coloured state word seen from a metre away, the unit it is on,
    phase, progress, elapsed time and this slot's done/failed counters."""

    start_requested = Signal(str)
    cancel_requested = Signal(str)
    chosen = Signal(str)
    _measured: ClassVar[dict[tuple[str, str], tuple[int, int]]] = {}  # (font, style): heights

    def __init__(self, port: str, slot: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("portCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        # a fixed minimum width (not a Python sizeHint override: layouts ask for it constantly,
        # and every call from Qt into Python competes for the GIL with the flashing threads)
        self.setMinimumWidth(self.width_for(compact=False))
        self.compact = False
        self._summary_text = ""
        self._view = PortView(port=port, slot=slot)
        self._selected = False
        base = self.font()

        self.title = QLabel()
        self.title.setFont(_scaled_font(base, 1.3, bold=True))
        self.port_label = QLabel()
        self.port_label.setObjectName("portName")
        self.port_label.setToolTip(port)
        self.port_label.setMinimumWidth(self.fontMetrics().averageCharWidth() * 6)
        self.port_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.port_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        self.big = QLabel()
        self.big.setObjectName("portState")
        self.big.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.big.setFont(_scaled_font(base, 2.4, bold=True))
        self.big.setMinimumHeight(int(self.big.fontMetrics().height() * 1.3))
        self.big.setAutoFillBackground(True)

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setFont(_scaled_font(base, 1.0, bold=True))
        self.message.setFixedHeight(self.message.fontMetrics().lineSpacing() * 2 + 2)
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.message.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)

        self.counters = QLabel()
        self.counters.setFont(_scaled_font(base, 1.1, bold=True))
        # compact cards (many ports on a small screen): one line instead of the facts below,
        # the unit (and the next one) on the left, the counters always whole on the right
        self.summary = QWidget()
        self.summary_unit = QLabel()
        self.summary_unit.setFont(_scaled_font(base, 1.0, bold=True))
        self.summary_unit.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.summary_counts = QLabel()
        self.summary_counts.setFont(_scaled_font(base, 1.0, bold=True))
        summary_row = QHBoxLayout(self.summary)
        summary_row.setContentsMargins(0, 0, 0, 0)
        summary_row.addWidget(self.summary_unit, 1)
        summary_row.addWidget(self.summary_counts)
        self.summary.setVisible(False)
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Flash this port now (the assigned row, else the next one)")
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip("Cancel the job on this port")
        self.start_button.clicked.connect(lambda: self.start_requested.emit(self.port))
        self.cancel_button.clicked.connect(lambda: self.cancel_requested.emit(self.port))
        for b in (self.start_button, self.cancel_button):
            b.setFocusPolicy(Qt.FocusPolicy.TabFocus)

        # two columns of facts: Unit / Next, Chip / MAC, Phase / Elapsed, then the counters
        self.fields: dict[str, QLabel] = {}
        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(1)
        bold = _scaled_font(base, 1.0, bold=True)
        value_width = QFontMetrics(bold).horizontalAdvance("24:0a:c4:00:00:00")
        for i, name in enumerate(("Unit", "Next", "Chip", "MAC", "Phase", "Elapsed")):
            key = QLabel(name + ":")
            key.setObjectName("fieldName")
            if name in SELECTABLE_FIELDS:
                value = _FactLabel(self._choose)
                value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            else:
                value = QLabel("–")
            if name in ("Unit", "Next", "MAC"):
                value.setFont(bold)
            # new text must not re-layout the window: the columns have fixed room
            value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            value.setMinimumWidth(value_width)
            grid.addWidget(key, i // 2, 2 * (i % 2))
            grid.addWidget(value, i // 2, 2 * (i % 2) + 1)
            self.fields[name] = value
        grid.setColumnStretch(1, 3)
        grid.setColumnStretch(3, 2)
        grid.addWidget(self.counters, 3, 0, 1, 4)

        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addWidget(self.port_label, 1)
        head.addWidget(self.start_button)
        head.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setSpacing(3)
        layout.addLayout(head)
        layout.addWidget(self.big)
        layout.addWidget(self.message)
        layout.addWidget(self.progress)
        self.details = QWidget()
        self.details.setLayout(grid)
        grid.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.details)
        layout.addWidget(self.summary)
        self._apply(self._view, force=True)

    @property
    def compact_height(self) -> int:
        return self._measure()[0]

    @property
    def full_height(self) -> int:
        return self._measure()[1]

    def _measure(self) -> tuple[int, int]:
        """The card's heights, compact and full, that the panel chooses its layout by: the
        same for every card in one font, so measured once for all (plugging in 32 ports
        built 32 cards, and measuring each took a quarter of the time)."""
        key = (self.font().key(), self.style().name())
        heights = PortCard._measured.get(key)
        if heights is None:
            was = self.compact
            layout = self.layout()
            self.set_compact(True)
            compact = layout.sizeHint().height()
            self.set_compact(False)
            heights = PortCard._measured[key] = (compact, layout.sizeHint().height())
            self.set_compact(was)
        return heights

    @property
    def port(self) -> str:
        return self._view.port

    def width_for(self, *, compact: bool) -> int:
        """The card's minimum width, full or compact."""
        return self.fontMetrics().averageCharWidth() * (30 if compact else 44)

    def set_compact(self, compact: bool) -> None:
        """Compact: the state word, the message on one line, the progress bar and one line with
        the unit, the next unit and the counters; for many ports on a small screen, where
        every slot must stay in view without scrolling."""
        if compact == self.compact:
            return
        self.compact = compact
        base = self.font()
        self.big.setFont(_scaled_font(base, 1.8 if compact else 2.4, bold=True))
        self.big.setMinimumHeight(int(self.big.fontMetrics().height() * (1.15 if compact else 1.3)))
        # a fixed number of lines: every card of a row keeps one height whatever its message
        lines = 1 if compact else 2
        self.message.setFixedHeight(self.message.fontMetrics().lineSpacing() * lines + 2)
        self._show_message()
        self.details.setVisible(not compact)
        self.port_label.setVisible(not compact)  # the slot name says it; the tooltip has the port
        self.summary.setVisible(compact)
        self.setMinimumWidth(self.width_for(compact=compact))

    @property
    def view(self) -> PortView:
        return self._view

    def set_view(self, view: PortView) -> None:
        """Show ``view`` (called from the window's 4 Hz repaint timer; cheap when unchanged).

        A view that differs only in when it arrived (a progress event that changed nothing the
        card shows) touches no widget: only the running clock is updated."""
        if view == self._view:
            return
        if replace(view, received=0.0) == replace(self._view, received=0.0):
            self._view = view
            self.tick(time.monotonic())
            return
        # QProgressBar.setValue() repaints at once (synchronously, with everything else that
        # is dirty in the window): 10-16 ms per card while 8 ports flash, 130 ms for a row of
        # cards. With updates off, the card is only marked dirty and the next paint event
        # draws it together with everything else.
        self.setUpdatesEnabled(False)
        try:
            self._apply(view)
        finally:
            self.setUpdatesEnabled(True)

    def tick(self, now: float) -> None:
        """Show the elapsed time as of ``now``: it keeps counting while the port works, so a
        port that hangs shows it (the window calls this from its 4 Hz repaint)."""
        v = self._view
        elapsed = v.elapsed
        if v.state in LIVE_STATES and v.received and elapsed:
            elapsed += max(0.0, now - v.received)
        text = f"{elapsed:.1f} s" if elapsed else "–"
        if text != self._shown_elapsed:
            self._shown_elapsed = text
            self.fields["Elapsed"].setText(text)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._elide_port()
        self._show_message()

    def _show_message(self) -> None:
        """The message in the operator's words: two lines on a full card, one on a compact one,
        ending in "…" if it goes on (the tooltip and the failed list have all of it)."""
        full = for_operator(self._view.shown_message, {self.port: self._view.slot})
        width = self.message.width()
        text = full
        if width > 0:
            metrics = self.message.fontMetrics()
            text = elide_lines(full, width - 2, 1 if self.compact else 2, metrics.horizontalAdvance)
        self.message.setText(text)
        raw = self._view.shown_message
        self.message.setToolTip(full if full == raw else f"{full}\n\n{raw}")
        summary = self._summary_text
        width = self.summary_unit.width()
        if width > 0:
            summary = self.summary_unit.fontMetrics().elidedText(
                summary, Qt.TextElideMode.ElideRight, width
            )
        self.summary_unit.setText(summary)
        self.summary_unit.setToolTip(self._summary_text)

    def _elide_port(self) -> None:
        width = max(self.port_label.width() - 4, 10)
        metrics = self.port_label.fontMetrics()
        shown = self.port
        if metrics.horizontalAdvance(shown) > width and "://" in shown:
            shown = shown.split("://", 1)[1]  # "127.0.0.1:45967" says more than "…ket://127.0…"
        self.port_label.setText(metrics.elidedText(shown, Qt.TextElideMode.ElideLeft, width))
        self.port_label.setToolTip(self.port)

    def set_selected(self, selected: bool) -> None:
        """The operator picked this port for the next scan."""
        if selected != self._selected:
            self._selected = selected
            self.setProperty("selected", selected)
            self.style().unpolish(self)
            self.style().polish(self)

    def mousePressEvent(self, event: Any) -> None:
        self.chosen.emit(self.port)
        super().mousePressEvent(event)

    def _choose(self) -> None:
        self.chosen.emit(self.port)

    def _apply(self, v: PortView, force: bool = False) -> None:
        old = self._view
        self._view = v
        self.title.setText(v.slot or v.port)
        if v.port != old.port:  # a device swapped in the slot answers on another port
            self._elide_port()
        state, old_state = v.shown_state, old.shown_state
        if force or (state, v.phase, v.done, v.total) != (
            old_state,
            old.phase,
            old.done,
            old.total,
        ):
            if force or state != old_state:  # style sheets are costly: only on a new state
                bg, fg = theme.CARD.get(state, theme.CARD["idle"])
                self.big.setStyleSheet(
                    f"background-color: {bg}; color: {fg}; border-radius: 6px; padding: 4px;"
                )
                chunk = {"passed": theme.CARD["passed"][0], "failed": theme.CARD["failed"][0]}
                color = chunk.get(v.state, theme.CARD["busy"][0])
                self.progress.setStyleSheet(f"QProgressBar::chunk {{ background-color: {color}; }}")
            word = theme.CARD_WORD.get(state, state.upper())
            if state == "busy" and v.total:
                word = f"{word} {100 * v.done // v.total}%"
            self.big.setText(word)
            if v.total:
                self.progress.setValue(int(1000 * v.done / v.total))
                self.progress.setFormat(f"{v.phase} %p%")
            else:
                self.progress.setValue(1000 if v.state == "passed" else 0)
                self.progress.setFormat(v.phase or "")
        unit = v.unit_text
        self.fields["Unit"].setText(unit)
        self.fields["Next"].setText(v.next_text or "–")
        self.fields["Chip"].setText(v.chip or "–")
        self.fields["MAC"].setText(v.mac or "–")
        self.fields["Phase"].setText(v.phase or "–")
        self._shown_elapsed = ""
        self.tick(time.monotonic())
        self.counters.setText(f"✔ {v.passed_count}   ✘ {v.failed_count}")
        summary = f"{unit} → {v.next_text}" if v.next_text else unit
        if (
            force
            or summary != self._summary_text
            or (v.shown_message, v.slot)
            != (
                old.shown_message,
                old.slot,
            )
        ):
            self._summary_text = summary
            self._show_message()  # word wrap and elision in Python: only for new text
        self.summary_counts.setText(f"✔ {v.passed_count}  ✘ {v.failed_count}")
        self.summary.setToolTip(f"{v.chip or '–'}  {v.mac or '–'}  {v.phase or ''}".strip())
        busy = v.state == "busy"
        self.start_button.setEnabled(not busy and state not in {"offline", "ledger"})
        self.cancel_button.setEnabled(busy or v.state in {"waiting", "attention"})
        self.setAccessibleName(f"{v.slot or v.port}: {theme.CARD_WORD.get(state, state)}")


class FeedbackLabel(QLabel):
    """Word-wrapped text in as many lines as fit its height, the last ending in "…" if the
    text goes on (the tooltip has it all): a long message is never cut off mid-line."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self._full = ""
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._fit()

    def text(self) -> str:  # type: ignore[override]
        """The whole text (what is shown may be shortened: :meth:`shown_text`)."""
        return self._full

    def shown_text(self) -> str:
        return super().text()

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        rect = self.contentsRect()
        metrics = self.fontMetrics()
        # the style sheet's padding is not in contentsRect: keep a margin for it
        width = rect.width() - 20
        lines = max(1, (rect.height() - 8) // max(metrics.lineSpacing(), 1))
        shown = self._full
        if width > 0 and self.isVisible():
            shown = elide_lines(self._full, width, lines, metrics.horizontalAdvance)
        super().setText(shown)


class ElidedLabel(QLabel):
    """A one-line label that ends with "…" instead of being cut off; the tooltip has it all."""

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def minimumSizeHint(self) -> QSize:
        return QSize(self.fontMetrics().averageCharWidth() * 10, super().minimumSizeHint().height())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        opt = QStyleOption()
        opt.initFrom(self)
        self.style().drawPrimitive(QStyle.PrimitiveElement.PE_Widget, opt, painter, self)
        rect = self.contentsRect().adjusted(8, 0, -8, 0)
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(
            rect, int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), text
        )
        painter.end()


@dataclass(frozen=True)
class MapBlock:
    """A region of the flash map as drawn (kind is bootloader/table/app/data/gap)."""

    kind: str
    name: str
    offset: int
    size: int
    written: bool = False


class FlashMapWidget(QWidget):
    """The flash drawn to scale, left to right: regions, gaps, and the factory-data partition
    highlighted (with the NVS image size drawn inside it). When the factory partition is too
    small to see next to the app, a second bar zooms into the start of the flash. Hover a region
    for its numbers."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._blocks: list[MapBlock] = []
        self._flash_size = 0
        self._zoom_end = 0
        self._image_size: int | None = None
        self.setMinimumHeight(self.fontMetrics().height() * 8)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)

    def set_map(
        self, regions: Sequence[Any], flash_size: int | None = None, image_size: int | None = None
    ) -> None:
        """``regions`` are station.partitions MapRegion-like records (kind, name, offset, size,
        written); ``image_size`` is how much of the factory partition the NVS image fills."""
        self._blocks = [
            MapBlock(r.kind, r.name, r.offset, r.size, bool(getattr(r, "written", False)))
            for r in sorted(regions, key=lambda r: r.offset)
        ]
        end = max((b.offset + b.size for b in self._blocks), default=0)
        self._flash_size = max(flash_size or 0, end)
        self._image_size = image_size
        # zoom: up to the end of the region after the factory partition, if it looks tiny
        self._zoom_end = 0
        factory = next((b for b in self._blocks if b.written), None)
        if factory is not None and self._flash_size and factory.size / self._flash_size < 0.08:
            later = [b.offset for b in self._blocks if b.offset > factory.offset]
            stop = factory.offset + factory.size
            self._zoom_end = min([o for o in later if o >= stop] or [stop]) + factory.size // 2
            self._zoom_end = min(self._zoom_end, self._flash_size)
        self.update()

    @property
    def blocks(self) -> list[MapBlock]:
        return list(self._blocks)

    @property
    def zoomed(self) -> bool:
        return bool(self._zoom_end)

    def sizeHint(self) -> QSize:
        return QSize(600, self.fontMetrics().height() * (8 if self._zoom_end else 4))

    def _bars(self) -> list[tuple[int, int, float, float]]:
        """(start, end, top, height) of each bar: the whole flash, then the zoom if any."""
        fm = self.fontMetrics()
        line = fm.height()
        if not self._zoom_end:
            return [(0, self._flash_size, line * 0.2, self.height() - line * 1.6)]
        h = (self.height() - line * 3.2) / 2
        return [
            (0, self._flash_size, line * 0.2, h),
            (0, self._zoom_end, line * 1.8 + h, h),
        ]

    def _geometry(self) -> list[tuple[QRectF, MapBlock]]:
        """Rectangles to scale; tiny regions get a minimum width so they stay visible."""
        if not self._blocks or not self._flash_size:
            return []
        width = max(self.width() - 2.0, 10.0)
        out = []
        for start, end, top, height in self._bars():
            span = end - start
            for b in self._blocks:
                if b.offset >= end or b.offset + b.size <= start:
                    continue
                x = 1 + width * (b.offset - start) / span
                w = max(width * (min(b.offset + b.size, end) - b.offset) / span, 3.0)
                out.append((QRectF(x, top, min(w, width + 1 - x), height), b))
        return out

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        rects = self._geometry()
        fm = self.fontMetrics()
        if not rects:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No partition table")
            return
        for rect, b in rects:
            self._draw_block(painter, rect, b)
        painter.setPen(QColor("#374151"))
        for start, end, top, height in self._bars():
            base_y = int(top + height + fm.ascent() + 2)
            left = f"0x{start:x}"
            right = f"0x{end:x} ({human_size(end)})"
            if end != self._flash_size:
                right = "zoom to " + right
            painter.drawText(QPoint(1, base_y), left)
            painter.drawText(QPoint(self.width() - fm.horizontalAdvance(right) - 2, base_y), right)
            for rect, b in rects:
                if b.written and abs(rect.top() - top) < 1:
                    text = f"{b.name} @ 0x{b.offset:x}"
                    lo = fm.horizontalAdvance(left) + 8
                    hi = (
                        self.width() - fm.horizontalAdvance(right) - fm.horizontalAdvance(text) - 12
                    )
                    painter.drawText(
                        QPoint(int(min(max(rect.left(), lo), max(hi, lo))), base_y), text
                    )
        painter.end()

    def _draw_block(self, painter: QPainter, rect: QRectF, b: MapBlock) -> None:
        fm = self.fontMetrics()
        key = "factory" if b.written else (b.kind if b.kind in theme.FLASH_MAP else "data")
        color = QColor(theme.FLASH_MAP[key])
        if b.kind == "gap":
            painter.fillRect(rect, QBrush(color, Qt.BrushStyle.BDiagPattern))
            painter.setPen(QPen(QColor("#9ca3af"), 1))
        else:
            painter.fillRect(rect, color)
            painter.setPen(QPen(QColor("#111827"), 1))
        painter.drawRect(rect)
        if b.written:
            if self._image_size is not None and b.size:
                fill = QRectF(rect)
                fill.setHeight(rect.height() * 0.25)
                fill.moveBottom(rect.bottom())
                fill.setWidth(rect.width() * min(self._image_size / b.size, 1.0))
                painter.fillRect(fill, QColor("#7c2d12"))
            painter.setPen(QPen(QColor("#b45309"), 3))
            painter.drawRect(rect.adjusted(-1, -1, 1, 1))
        label = b.name if b.kind != "gap" else ""
        if label and fm.horizontalAdvance(label) + 4 < rect.width():
            dark = b.kind in {"bootloader", "table", "app"}
            painter.setPen(QColor("#ffffff" if dark else "#111827"))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, label)

    def block_at(self, x: float, y: float) -> MapBlock | None:
        for rect, b in self._geometry():
            if rect.contains(x, y):
                return b
        return None

    def event(self, event: Any) -> bool:
        if event.type() == event.Type.ToolTip and isinstance(event, QHelpEvent):
            b = self.block_at(event.pos().x(), event.pos().y())
            if b is None:
                QToolTip.hideText()
            else:
                text = (
                    f"{b.name or b.kind}: 0x{b.offset:x} – 0x{b.offset + b.size:x} "
                    f"({human_size(b.size)})"
                )
                if b.written and self._image_size is not None:
                    text += f"\nNVS image: {human_size(self._image_size)} written here"
                QToolTip.showText(event.globalPos(), text, self, QRect())
            return True
        return super().event(event)
