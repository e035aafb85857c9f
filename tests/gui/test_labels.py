"""Labels in the window: printed when a unit passes (a setting), reprinted from the done rows, the
failed list and a scan (F8), always on the printer thread, every print in the ledger's audit
log; the lot's template checked when the lot opens."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

import station.labels.service
from station.gui.dialogs import SettingsDialog
from station.gui.resources import resources_dir
from station.gui.settings import StationSettings
from station.gui.window import MainWindow

pytest.importorskip("station.labels")

DEAD_PORTS = ["socket://127.0.0.1:9"]
LABEL = (
    'label = { width_mm = 50, height_mm = 25, lines = ["{serial_no}", "MAC {mac}", '
    '"key {device_key}"], code128 = "{serial_no}" }\n'
)
KEY_OF_ROW_3 = "9cad89dd"  # the start of row 3's device_key (a secret column)


@pytest.fixture
def lot_file(tmp_path: Path) -> Path:
    folder = tmp_path / "lot"
    shutil.copytree(resources_dir() / "sample_lot", folder)
    lot = folder / "lot.toml"
    sample = lot.read_text()
    lot.write_text(sample[: sample.index("[label]")] + LABEL)  # this test's label instead
    return lot


@pytest.fixture
def window(qtbot: QtBot, settings: StationSettings) -> Iterator[MainWindow]:
    settings.ports = DEAD_PORTS
    settings.auto_start = False
    settings.operator = "ana"
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


class ZplListener:
    """A one-label ZPL printer on 127.0.0.1: accepts one connection, keeps what it received."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received = b""
        self.got = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="zpl listener")
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(30)
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            while chunk := conn.recv(65536):
                self.received += chunk
        self.got.set()

    def close(self) -> None:
        self.server.close()
        self.thread.join(35)


@pytest.fixture
def zpl() -> Iterator[ZplListener]:
    listener = ZplListener()
    yield listener
    listener.close()


def finish(w: MainWindow, index: int, *, ok: bool) -> None:
    """Row ``index`` as a flashed unit: done, or failed (through the ledger's own API)."""
    led = w.lot.ledger
    claim = led.claim_row(index, mac=f"24:0a:c4:00:00:{index:02x}", port="COM7", chip="ESP32")
    if ok:
        led.complete(claim, {})
    else:
        led.fail(claim, "verify failed at 0x9000 (fctry)", bad_row=True)
    w.bridge.mark_rows_changed(index, "done" if ok else "failed")
    w.refresh()


def label_audits(w: MainWindow) -> list[Any]:
    return [a for a in w.lot.ledger.audit_log() if a.action.startswith("label")]


def wait_audit(qtbot: QtBot, w: MainWindow, n: int = 1) -> list[Any]:
    qtbot.waitUntil(lambda: len(label_audits(w)) >= n, timeout=20_000)
    return label_audits(w)


def test_reprint_of_a_done_row_goes_to_the_zpl_printer_off_the_gui_thread_and_is_audited(
    qtbot: QtBot,
    window: MainWindow,
    settings: StationSettings,
    lot_file: Path,
    zpl: ZplListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[threading.Thread] = []
    real = station.labels.service.output_label

    def spy(*args: Any, **kw: Any) -> Any:
        threads.append(threading.current_thread())
        return real(*args, **kw)

    monkeypatch.setattr(station.labels.service, "output_label", spy)
    settings.label_output = f"zpl:tcp://127.0.0.1:{zpl.port}"
    assert window.open_lot(str(lot_file))
    finish(window, 2, ok=True)
    window.tabs.setCurrentIndex(0)
    window.row_view.selectRow(2)
    window.reprint_selected()
    assert "SN26110003" in window.scan_result.text()
    (audit,) = wait_audit(qtbot, window)
    assert audit.action == "label reprint" and audit.operator == "ana"
    assert audit.detail == f"label SN26110003 -> zpl tcp://127.0.0.1:{zpl.port} (1 copy)"
    assert zpl.got.wait(10)
    text = zpl.received.decode()
    assert text.startswith("^XA") and "SN26110003" in text and "24:0a:c4:00:00:02" in text
    assert KEY_OF_ROW_3 not in text  # the secret column prints masked
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert window.lot.ledger.row(2).state == "done"  # a reprint changes nothing else


def test_reprint_from_the_failed_list_to_a_pdf(
    qtbot: QtBot, window: MainWindow, settings: StationSettings, lot_file: Path, tmp_path: Path
) -> None:
    settings.label_output = f"pdf:{tmp_path / 'labels' / '{unit_id}.pdf'}"
    assert window.open_lot(str(lot_file))
    finish(window, 4, ok=False)
    qtbot.waitUntil(lambda: window.failed_model.rowCount() == 1)
    window.tabs.setCurrentIndex(window.failed_tab)
    window.failed_view.selectRow(0)
    window.act_reprint.trigger()
    (audit,) = wait_audit(qtbot, window)
    pdf = tmp_path / "labels" / "SN26110005.pdf"
    assert audit.action == "label reprint"
    assert audit.detail == f"label SN26110005 -> pdf {pdf} (1 copy)"
    assert pdf.read_bytes().startswith(b"%PDF")


def test_f8_then_a_scan_reprints_instead_of_assigning(
    qtbot: QtBot, window: MainWindow, settings: StationSettings, lot_file: Path, tmp_path: Path
) -> None:
    settings.label_output = f"pdf:{tmp_path / 'out' / '{unit_id}.pdf'}"
    assert window.open_lot(str(lot_file))
    finish(window, 2, ok=True)
    window.activateWindow()
    qtbot.waitActive(window)
    qtbot.keyClick(window.row_view, Qt.Key.Key_F8)
    assert window.reprint_armed and window.act_reprint_scan.isChecked()
    assert "REPRINT" in window.port_choice.text()  # obvious on screen, beside the scan field
    assert "REPRINT" in window.scan_field.placeholderText()
    handled: list[tuple[str, bool, str]] = []
    window.scan_handled.connect(lambda c, ok, m: handled.append((c, ok, m)))
    window.handle_scan("SN26110003")
    assert handled[-1][1] and not window.reprint_armed  # one scan, then back to normal
    (audit,) = wait_audit(qtbot, window)
    assert audit.action == "label reprint" and "SN26110003" in audit.detail
    assert (tmp_path / "out" / "SN26110003.pdf").exists()
    assert window.lot.ledger.row(2).state == "done"
    # a unit never flashed has no label: refused loudly, and the scan assigns nothing
    window.arm_reprint(True)
    window.handle_scan("SN26110009")
    assert not handled[-1][1] and "not flashed yet" in window.scan_result.text()
    assert window.lot.ledger.row(8).state == "pending"
    assert window.bridge.view(DEAD_PORTS[0]).row_index is None
    # Esc leaves reprint mode without a scan
    window.arm_reprint(True)
    qtbot.keyClick(window.scan_field, Qt.Key.Key_Escape)
    assert not window.reprint_armed and "REPRINT" not in window.port_choice.text()
    assert len(label_audits(window)) == 1


def test_a_printer_that_does_not_answer_is_reported_and_audited(
    qtbot: QtBot, window: MainWindow, settings: StationSettings, lot_file: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        free = s.getsockname()[1]  # closed again: nothing listens there
    settings.label_output = f"zpl:tcp://127.0.0.1:{free}"
    assert window.open_lot(str(lot_file))
    finish(window, 0, ok=True)
    window.row_view.selectRow(0)
    window.reprint_selected()
    (audit,) = wait_audit(qtbot, window)
    assert audit.action == "label failed" and "SN26110001" in audit.detail
    qtbot.waitUntil(lambda: "not printed" in window.scan_result.text())


def test_template_problems_are_listed_when_the_lot_opens(
    window: MainWindow, settings: StationSettings, lot_file: Path, tmp_path: Path
) -> None:
    lot_file.write_text(
        lot_file.read_text().replace(LABEL, "")
        + 'label = { width_mm = 50, height_mm = 25, lines = ["{serial}"], qr = "{device_key}" }\n'
    )
    settings.label_output = f"pdf:{tmp_path / 'x.pdf'}"
    assert window.open_lot(str(lot_file))  # the lot opens: units can still be flashed
    assert window.row_model.rowCount() == 200
    messages = [window.problem_model.problem(i).message for i in range(2)]
    assert window.problem_model.rowCount() == 2
    assert "{serial} is neither a column" in messages[0] + messages[1]
    assert "secret column" in messages[0] + messages[1]
    assert "(2)" in window.tabs.tabText(window.problems_tab)
    finish(window, 1, ok=True)
    window.row_view.selectRow(1)
    window.reprint_selected()
    assert "template has problems" in window.scan_result.text()
    assert label_audits(window) == [] and not (tmp_path / "x.pdf").exists()


def test_label_settings_are_checked(qtbot: QtBot, settings: StationSettings) -> None:
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.label_output.setText("fax:123")
    dialog.accept()
    assert "not a label output" in dialog.error.text() and settings.label_output == ""
    dialog.label_output.setText("")
    dialog.print_on_pass.setChecked(True)
    dialog.accept()
    assert "needs an output" in dialog.error.text() and not settings.print_on_pass
    dialog.label_output.setText("zpl:tcp://10.0.0.7:9100")
    dialog.accept()
    assert settings.label_output == "zpl:tcp://10.0.0.7:9100" and settings.print_on_pass


def test_a_unit_that_passes_gets_its_label_when_the_setting_is_on(
    qtbot: QtBot, window: MainWindow, settings: StationSettings, lot_file: Path, tmp_path: Path
) -> None:
    from station.production import PortUpdate

    settings.label_output = f"pdf:{tmp_path / 'auto' / '{unit_id}.pdf'}"
    assert window.open_lot(str(lot_file))
    port = DEAD_PORTS[0]
    finish(window, 5, ok=True)
    settings.print_on_pass = False
    # the label policy is the session's: it sees the orchestrator's events first
    window.session.deliver(PortUpdate(port, "Slot 1", "passed", row_index=5))
    window.session.deliver(PortUpdate(port, "Slot 1", "idle"))
    settings.print_on_pass = True
    finish(window, 6, ok=True)
    # the orchestrator's event, as it arrives from a worker thread
    worker = threading.Thread(
        target=window.session.deliver, args=(PortUpdate(port, "Slot 1", "passed", row_index=6),)
    )
    worker.start()
    worker.join()
    (audit,) = wait_audit(qtbot, window)
    assert audit.action == "label" and audit.operator == "ana"
    assert audit.detail.startswith("label SN26110007 -> pdf ")
    assert (tmp_path / "auto" / "SN26110007.pdf").exists()
    assert not (tmp_path / "auto" / "SN26110006.pdf").exists()  # the setting was off then
