"""`station flash` input errors: all problems at once, located, exit 2, nothing flashed."""

from __future__ import annotations

from pathlib import Path

from station import cli


def test_bad_input_is_reported_with_locations(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    a = tmp_path / "a.bin"
    a.write_bytes(b"\x00" * 0x2000)
    b = tmp_path / "b.bin"
    b.write_bytes(b"\x00" * 0x100)
    code = cli.main(
        [
            "flash",
            "--port",
            "COM7",
            "--port",
            "COM7",
            "--chip",
            "esp99",
            "--baud",
            "0",
            "zz",
            str(a),
            "0x10000",
            str(empty),
            "0x9000",
            str(a),
            "0xA000",
            str(b),
            "0x20000",
            str(tmp_path / "missing.bin"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert "command line:0:1: ADDR: not a flash address: 'zz' (e.g. 0x9000)" in err
    assert f"{empty}:0:0: FILE: the file is empty" in err
    assert f"{tmp_path / 'missing.bin'}:0:0: FILE: no such file" in err
    assert any(line.startswith(f"{b}:0:0: ADDR: 0xa000 overlaps") for line in err)
    assert any("--chip: unknown chip 'esp99'" in line for line in err)
    assert "command line:0:0: --baud: not a baud rate: 0" in err
    assert "command line:0:0: --port: COM7 is given twice" in err
    assert not any("Traceback" in line for line in err)


def test_odd_number_of_pairs(tmp_path: Path, capsys) -> None:
    assert cli.main(["flash", "--port", "COM7", "0x9000"]) == 2
    assert "has no file after it" in capsys.readouterr().err


def test_ports_command_lists_json(monkeypatch, capsys) -> None:
    import json
    from types import SimpleNamespace

    import serial.tools.list_ports as lp

    monkeypatch.setattr(
        lp,
        "comports",
        lambda: [
            SimpleNamespace(
                device="/dev/ttyACM0",
                description="USB JTAG/serial debug unit",
                vid=0x303A,
                pid=0x1001,
                serial_number="F4:12",
                location="3-2",
            )
        ],
    )
    assert cli.main(["ports", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == [
        {
            "device": "/dev/ttyACM0",
            "slot": "3-2",
            "location": "3-2",
            "vid": 0x303A,
            "pid": 0x1001,
            "serial_number": "F4:12",
            "description": "USB JTAG/serial debug unit",
        }
    ]
    assert cli.main(["ports"]) == 0
    out = capsys.readouterr().out
    assert "303a:1001" in out and "/dev/ttyACM0" in out
