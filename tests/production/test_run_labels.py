"""`station run --labels OUTPUT`: a label for each passed unit, printed headless by the Qt-free
label service and audited in the ledger, exactly as the window prints them."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from station.ledger import Ledger
from tests.production.conftest import make_small_lot
from tests.production.test_run_command import Conveyor, boards, run

LABEL = """
[label]
width_mm = 50
height_mm = 25
lines = ["SN {serial_no}", "MAC {mac}", "key {device_key}"]
code128 = "{serial_no}"
"""


class ZplPrinter:
    """A Zebra-type printer on 127.0.0.1: every connection is one label, kept as text."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.labels: list[str] = []
        self.lock = threading.Condition()
        self.thread = threading.Thread(target=self._serve, name="zpl printer", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:  # closed
                return
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
            with self.lock:
                self.labels.append(data.decode())
                self.lock.notify_all()

    def wait_for(self, count: int) -> list[str]:
        """The labels once ``count`` have arrived (a label is handed over when the station's
        connection closes; this thread may take it in a moment later)."""
        with self.lock:
            self.lock.wait_for(lambda: len(self.labels) >= count, timeout=30.0)
            return list(self.labels)

    def close(self) -> None:
        self.server.close()
        self.thread.join(5)


@pytest.fixture
def printer() -> Iterator[ZplPrinter]:
    p = ZplPrinter()
    yield p
    p.close()


def test_each_passed_unit_gets_its_label_on_the_zpl_printer_and_in_the_audit(
    tmp_path: Path,
    printer: ZplPrinter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lot = make_small_lot(tmp_path / "lot", 6, name="LBL", extra=LABEL)
    bench = Conveyor(lot.parent / "LBL.station.db", "LBL")
    bench.load("sim://1", boards(1, 3))
    bench.load("sim://2", boards(2, 3))
    output = f"zpl:tcp://127.0.0.1:{printer.port}"
    assert run(lot, bench, monkeypatch, "--labels", output, "--operator", "eve") == 0

    out = capsys.readouterr().out.splitlines()
    passed = {line.split()[2].removeprefix("unit=") for line in out if line.startswith("PASS ")}
    assert passed == {f"SN{i:04d}" for i in range(1, 7)}
    printed = [line for line in out if line.startswith("label ")]
    assert sorted(printed) == sorted(
        f"label {unit} -> zpl tcp://127.0.0.1:{printer.port} (1 copy)" for unit in passed
    )
    # every label was handed over before the run ended: one label per unit, each its own
    labels = printer.wait_for(6)
    assert len(labels) == 6
    for unit in passed:
        (label,) = [z for z in labels if unit in z]
        assert label.startswith("^XA")
    led = Ledger(lot.parent / "LBL.station.db")
    led.attach("LBL")
    try:
        audits = [a for a in led.audit_log() if a.action == "label"]
        assert sorted(a.detail for a in audits) == sorted(line for line in printed)
        assert {a.operator for a in audits} == {"eve"}
        for i in range(6):  # the secret column prints masked, never its value
            value = led.row(i)
            assert value.state == "done"
    finally:
        led.close()
    values = (lot.parent / "values.csv").read_text().splitlines()[1:]
    for line in values:
        secret = line.split(",")[1]
        assert all(secret not in z for z in labels)


def test_a_printer_that_does_not_answer_fails_the_run_but_not_the_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    lot = make_small_lot(tmp_path / "lot", 2, name="LBL", extra=LABEL)
    bench = Conveyor(lot.parent / "LBL.station.db", "LBL")
    bench.load("sim://1", boards(1, 2))
    assert run(lot, bench, monkeypatch, "--labels", f"zpl:tcp://127.0.0.1:{port}") == 1
    captured = capsys.readouterr()
    assert captured.out.count("PASS ") == 2
    errors = [line for line in captured.err.splitlines() if "not printed" in line]
    assert len(errors) == 2 and all(line.startswith("error: label SN000") for line in errors)
    led = Ledger(lot.parent / "LBL.station.db")
    led.attach("LBL")
    try:
        assert [a.action for a in led.audit_log() if a.action.startswith("label")] == [
            "label failed",
            "label failed",
        ]
        assert led.counters().done == 2  # the units are done; only their labels are missing
    finally:
        led.close()


@pytest.mark.parametrize(
    ("extra", "output", "message"),
    [
        ("", "zpl:tcp://127.0.0.1:9100", "the lot has no [label] table"),
        (LABEL, "fax:+49", "is not a label output"),
        (LABEL.replace('{serial_no}"\n', '{nope}"\n'), "zpl:/dev/null", "nope"),
    ],
)
def test_labels_are_checked_before_any_device_is_touched(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: str,
    output: str,
    message: str,
) -> None:
    lot = make_small_lot(tmp_path / "lot", 2, name="LBL", extra=extra)
    bench = Conveyor(lot.parent / "LBL.station.db", "LBL")
    bench.load("sim://1", boards(1, 2))
    assert run(lot, bench, monkeypatch, "--labels", output) == 2
    err = capsys.readouterr().err
    assert message in err
    assert bench.devices["sim://1"].writes == 0


def test_pdf_labels_are_drawn_headless_by_the_registered_qt_renderer(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    pytest.importorskip("PySide6")
    # the test process shares one Qt application with the GUI tests (a QApplication, which
    # pytest-qt must make first); `station run` alone makes a QGuiApplication on its main thread
    request.getfixturevalue("qapp")
    lot = make_small_lot(tmp_path / "lot", 2, name="LBL", extra=LABEL)
    bench = Conveyor(lot.parent / "LBL.station.db", "LBL")
    bench.load("sim://1", boards(1, 2))
    out_dir = tmp_path / "labels"
    assert run(lot, bench, monkeypatch, "--labels", f"pdf:{out_dir}/{{unit_id}}.pdf") == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["SN0001.pdf", "SN0002.pdf"]
    assert all(p.read_bytes().startswith(b"%PDF-") for p in out_dir.iterdir())
    assert capsys.readouterr().out.count(f"-> pdf {out_dir}/SN000") == 2
