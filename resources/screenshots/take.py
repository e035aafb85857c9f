"""Take the README's screenshots of the station window during a demo run (offscreen).

    QT_QPA_PLATFORM=offscreen python resources/screenshots/take.py [--scale 2]

Starts the demo (simulated devices, a working copy of the sample lot), scans a few units, cuts
one device's line so a failure shows, and grabs the window at 1366x740 (a line PC's screen
minus the task bar). With --scale 2 it shows what a 4K screen gets (QT_SCALE_FACTOR=2).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))


def wait(app: object, seconds: float, until: object = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()  # type: ignore[attr-defined]
        if until is not None and until():  # type: ignore[operator]
            return
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", default=str(HERE))
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.scale != 1.0:
        os.environ["QT_SCALE_FACTOR"] = str(args.scale)
    suffix = "" if args.scale == 1.0 else f"-x{args.scale:g}"
    out = Path(args.out)

    from station.gui.app import make_application, start_demo
    from station.gui.window import MainWindow
    from station.production.events import LedgerStatus, LogEvent
    from tests.gui.proxy import CuttableProxy

    app = make_application()
    demo = start_demo()
    proxy = CuttableProxy(demo.devices[3].port)
    slow = CuttableProxy(demo.devices[2].port)  # slot 3 hangs mid-write: caught WORKING
    try:
        ports = [d.port for d in demo.devices[:2]] + [slow.port, proxy.port]
        demo.settings.ports = ports
        demo.settings.sound = False
        w = MainWindow(demo.settings, title_suffix=" (demo)")
        w.resize(1366, 740)
        w.show()
        w.open_lot(str(demo.lot_path))
        wait(app, 1.0)
        proxy.cut_after(12_000)
        w.handle_scan("SN26110001")
        w.handle_scan("SN26110002")
        w.choose_port(proxy.port)  # Ctrl+4
        w.handle_scan("SN26110004")
        wait(
            app,
            120,
            lambda: (
                w.cards[ports[1]].view.state == "passed"
                and w.cards[proxy.port].view.state == "failed"
            ),
        )
        slow.stall_after(20_000)
        w.handle_scan("SN26110003")  # lands on slot 3, which hangs while it writes
        wait(
            app,
            60,
            lambda: w.bridge.view(ports[2]).phase == "writing" and w.bridge.view(ports[2]).done > 0,
        )
        w.choose_port(ports[2])  # Ctrl+3: the operator scans slot 3's next board ahead
        w.handle_scan("SN26110005")
        wait(app, 1.0)
        w.refresh()
        w.grab().save(str(out / f"window{suffix}.png"))
        # what every card shows while the ledger's database cannot be reached (as the
        # orchestrator tells the bridge when a ledger call finds it gone), then back
        w.bridge.on_event(LedgerStatus(True))
        w.bridge.on_event(
            LogEvent(
                "",
                "error",
                "ledger offline: reconnecting; units in progress stop before they are recorded",
            )
        )
        w.refresh()
        w.grab().save(str(out / f"ledger-offline{suffix}.png"))
        w.bridge.on_event(LedgerStatus(False))
        w.refresh()
        w.tabs.setCurrentIndex(w.failed_tab)
        w.failed_view.selectRow(0)
        w.handle_scan("SN26110001")  # already done: refused loudly
        w.refresh()
        w.grab().save(str(out / f"failed{suffix}.png"))
        w.tabs.setCurrentIndex(0)
        w.arm_reprint(True)  # F8: the next scan reprints a label instead of assigning
        w.refresh()
        w.grab().save(str(out / f"reprint{suffix}.png"))
        w.arm_reprint(False)
        w.tabs.setCurrentIndex(2)
        w.refresh()
        w.grab().save(str(out / f"partitions{suffix}.png"))
        # a hub with four more boards: eight slots become compact cards, all in view
        from station.flashing import start_simulated_devices

        more = start_simulated_devices(4, nice=10)
        try:
            w.tabs.setCurrentIndex(0)
            w.add_ports([(d.port, None) for d in more])
            w.row_view.clearSelection()
            for _ in more:
                w.assign_selected()  # F6: the next pending unit to the next ready slot
            wait(app, 60, lambda: all(w.cards[d.port].view.state == "passed" for d in more))
            wait(app, 0.5)
            w.refresh()
            w.grab().save(str(out / f"eight{suffix}.png"))
        finally:
            w.shutdown()
            for d in more:
                d.stop()

        bad = Path(tempfile.mkdtemp(prefix="station-bad-lot-"))
        shutil.copytree(demo.lot_path.parent, bad / "lot")
        values = bad / "lot" / "values.csv"
        lines = values.read_text().splitlines()
        lines[5] = lines[5].replace(lines[5].split(",")[1], "0x12zz")
        lines[9] = lines[3]
        values.write_text("\n".join(lines) + "\n")
        w2 = MainWindow(demo.settings, title_suffix=" (demo)")
        w2.resize(1366, 740)
        w2.show()
        w2.open_lot(str(bad / "lot" / "lot.toml"))
        w2.show_problem(w2.problem_model.index(0, 0))
        wait(app, 0.5)
        w2.grab().save(str(out / f"problems{suffix}.png"))
        w2.shutdown()
        shutil.rmtree(bad, ignore_errors=True)
    finally:
        proxy.close()
        slow.close()
        demo.stop()


if __name__ == "__main__":
    main()
