"""`station report LOT --html FILE`: one self-contained page, checked in a real headless browser
(Chromium) where one is installed: it opens, the charts render, nothing is fetched."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from station.cli import main
from station.ledger import Ledger, LedgerRow
from station.production.report_html import write_report
from tests.ledger.line import T0, Clock, busy_line

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium)"
)
HOSTILE = '<script>alert(1)</script><img src="http://evil.example/x.png" onerror="alert(2)">'


class Elements(HTMLParser):
    """Tags and attributes of a page (or of the DOM a browser dumped)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]


def parse(text: str) -> Elements:
    p = Elements()
    p.feed(text)
    return p


def assert_self_contained(text: str) -> None:
    """No script, nothing fetched: no URL, no src/href, a CSP of default-src 'none'."""
    assert not re.search(r"https?://", text, re.I)
    found = parse(text)
    assert "script" not in found.tags and "img" not in found.tags and "link" not in found.tags
    assert not [a for a in found.attrs if a[1] in ("src", "href") or a[1].startswith("on")]
    assert "default-src 'none'" in text


@pytest.fixture
def busy_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clock = Clock()
    monkeypatch.setattr("station.ledger.connection.time", clock)
    busy_line(str(tmp_path / "line.db"), clock)
    out = tmp_path / "report.html"
    with Ledger(tmp_path / "line.db") as led:
        led.attach("LINE-1")
        clock.now = T0 + 6 * 3600
        write_report(led, out)
    return out


def test_the_page_has_every_figure_and_no_outside_resource(busy_report: Path) -> None:
    text = busy_report.read_text(encoding="utf-8")
    assert_self_contained(text)
    for heading in (
        "Units per hour",
        "Yield per slot",
        "Yield per station",
        "Failures by reason (top ten)",
        "Time per phase",
        "Stations on the line",
        "Failures",
    ):
        assert f"<h2>{heading}</h2>" in text
    found = parse(text)
    assert found.tags.count("svg") == 5
    assert (
        "line-b / slot 3" in text
        and "writing: timed out after N s waiting for &lt;port&gt;" in text
    )
    assert "quiet" in text and "stopped" in text  # line-c's run is open, long without activity
    assert not busy_report.with_name("report.html.tmp").exists()


def test_text_from_the_ledger_is_escaped(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db", station_id=HOSTILE) as led:
        led.import_lot("<b>L</b>", "r", [LedgerRow(0, 2, HOSTILE, HOSTILE, [HOSTILE])])
        c = led.claim_next(mac="24:0a:c4:00:00:01", port=HOSTILE, slot=HOSTILE)
        assert c is not None
        led.fail(c, HOSTILE, {HOSTILE: 1.0})
        c = led.claim_next(mac="24:0a:c4:00:00:02", port="p", slot="s")
        assert c is not None
        led.complete(c, {HOSTILE: 2.0})
        write_report(led, tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script" not in text and "<img" not in text and "<b>L</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert_self_contained(text.replace("http://evil.example", ""))  # escaped, as text only
    assert not [a for a in parse(text).attrs if a[1].startswith("on")]


def test_report_html_command(
    worked_lot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shift.html"
    assert main(["report", str(worked_lot), "--html", str(out)]) == 0
    assert "report written to" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert "Lot SMALL" in text and "24:0a:c4:00:00:03" in text and "write failed" in text
    # secret values never reach the ledger, so never the page
    values = (worked_lot.parent / "values.csv").read_text().splitlines()[1:]
    assert not any(line.split(",")[1] in text for line in values)


def test_a_report_into_a_missing_folder_is_a_located_problem(
    worked_lot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no such folder" / "shift.html"
    assert main(["report", str(worked_lot), "--html", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{out}:0:0: html: cannot write the report") and "Traceback" not in err
    assert not out.parent.exists()


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-sync",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def page_requests(page: Path, log: Path) -> list[str]:
    """What the page asked the network for, from Chromium's own network log: every request made
    for the page (its isolation key is the file:// site), not the browser's own housekeeping."""
    chromium(f"--log-net-log={log}", "--dump-dom", "--virtual-time-budget=2000", page.as_uri())
    events = json.loads(log.read_text(encoding="utf-8"))["events"]
    return sorted(
        {
            p["url"]
            for p in (ev.get("params", {}) for ev in events)
            if "url" in p
            and "file://" in str(p.get("network_isolation_key", ""))
            and not p["url"].startswith("file:")
        }
    )


@needs_chromium
def test_the_page_makes_no_network_request(busy_report: Path, tmp_path: Path) -> None:
    control = tmp_path / "control.html"  # the log does show a page's requests
    control.write_text('<img src="http://127.0.0.1:9/x.png">', encoding="utf-8")
    assert page_requests(control, tmp_path / "control.json") == ["http://127.0.0.1:9/x.png"]
    assert page_requests(busy_report, tmp_path / "net.json") == []


@needs_chromium
def test_the_page_renders_in_chromium(busy_report: Path, tmp_path: Path) -> None:
    url = busy_report.as_uri()
    dom = chromium("--dump-dom", "--virtual-time-budget=2000", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = parse(dom.stdout)
    # the browser built the charts: five SVGs with every bar, box and axis of the page
    source = parse(busy_report.read_text(encoding="utf-8"))
    assert found.tags.count("svg") == 5
    for tag in ("rect", "line", "g", "text", "table", "tr"):
        assert found.tags.count(tag) == source.tags.count(tag) > 2, tag
    assert "script" not in found.tags
    shot = tmp_path / "report.png"
    taken = chromium(f"--screenshot={shot}", "--window-size=1100,2600", "--hide-scrollbars", url)
    assert shot.is_file(), taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20000
    keep = Path(__file__).resolve().parents[2] / "build" / "report.png"
    if keep.parent.is_dir():  # for a person to look at, when there is a build folder
        shutil.copy(shot, keep)


def test_a_lot_nothing_was_done_for_yet(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as led:
        led.import_lot("L0", "r", [LedgerRow(0, 2, "SN1", "SN1", ["SN1"])])
        s = write_report(led, tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert s.total == 1 and "<svg" not in text
    for note in ("No unit finished yet.", "No failures.", "No failed attempts."):
        assert note in text
    assert_self_contained(text)
