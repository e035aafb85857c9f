"""Lots for the production tests: copies of the sample lot, small ones for simulated devices."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from station.production import Orchestrator, open_lot
from tests.production.fakes import FakeBench, FakeDevice

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "sample_lot"


def copy_sample(dest: Path) -> Path:
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns("*.station.*"))
    return dest / "lot.toml"


def make_small_lot(
    folder: Path,
    rows: int,
    *,
    name: str = "SMALL",
    partition: str = "fctry",
    nvs_keys: str | None = None,
    extra: str = "",
) -> Path:
    """A lot with a 0x3000 factory partition (the smallest NVS) — fast on simulated devices.

    ``nvs_keys``: the flags of an ``nvs_key`` partition at 0xc000 (e.g. "encrypted"), none if
    None; ``extra``: lines appended to lot.toml."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.csv").write_text(
        "factory,namespace,\nserial_no,data,string\ndevice_key,data,hex2bin\nhw_rev,data,u32\n",
        encoding="utf-8",
    )
    lines = ["serial_no,device_key,hw_rev"]
    lines += [f"SN{i + 1:04d},{os.urandom(16).hex()},{i}" for i in range(rows)]
    (folder / "values.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    nvs = "nvs, data, nvs, 0x9000, 0x4000,\n"
    if nvs_keys is not None:
        nvs = (
            "nvs, data, nvs, 0x9000, 0x3000,\n"
            f"nvs_key, data, nvs_keys, 0xc000, 0x1000, {nvs_keys}\n"
        )
    (folder / "partitions.csv").write_text(
        f"{nvs}{partition}, data, nvs, 0xd000, 0x3000,\nfactory, app, factory, 0x10000, 1M,\n",
        encoding="utf-8",
    )
    lot = folder / "lot.toml"
    lot.write_text(
        f'name = "{name}"\nconfig = "config.csv"\nvalues = "values.csv"\n'
        f'partition_table = "partitions.csv"\npartition = "{partition}"\nfileid = "serial_no"\n'
        f'scan_column = "serial_no"\n{extra}',
        encoding="utf-8",
    )
    return lot


@pytest.fixture
def sample_lot(tmp_path: Path) -> Path:
    return copy_sample(tmp_path / "sample")


def make_build(lot: Path, *, chip: str = "esp32", app_size: int = 0x2000) -> Path:
    """A small fake ESP-IDF build beside a lot (bootloader, the lot's partition table, app and
    the flasher_args.json idf.py writes) and ``firmware = "build"`` in its lot file."""
    from station.partitions import load_table, to_binary

    root = lot.parent / "build"
    (root / "bootloader").mkdir(parents=True)
    (root / "partition_table").mkdir()
    (root / "bootloader" / "bootloader.bin").write_bytes(b"\xe9" + os.urandom(0xFFF))
    table = load_table(lot.parent / "partitions.csv")
    (root / "partition_table" / "partition-table.bin").write_bytes(to_binary(table))
    (root / "app.bin").write_bytes(b"\xe9" + os.urandom(app_size - 1))
    files = {
        "0x1000": "bootloader/bootloader.bin",
        "0x8000": "partition_table/partition-table.bin",
        "0x10000": "app.bin",
    }
    args = {
        "write_flash_args": ["--flash_mode", "dio", "--flash_size", "4MB", "--flash_freq", "40m"],
        "flash_settings": {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "40m"},
        "flash_files": files,
        "bootloader": {"offset": "0x1000", "file": files["0x1000"], "encrypted": "false"},
        "app": {"offset": "0x10000", "file": files["0x10000"], "encrypted": "false"},
        "partition-table": {"offset": "0x8000", "file": files["0x8000"], "encrypted": "false"},
        "extra_esptool_args": {"after": "hard_reset", "before": "default_reset", "chip": chip},
    }
    (root / "flasher_args.json").write_text(json.dumps(args, indent=4), encoding="utf-8")
    with lot.open("a", encoding="utf-8") as f:
        f.write('firmware = "build"\n')
    return root


@pytest.fixture
def worked_lot(tmp_path: Path) -> Path:
    """A 6-row lot where 3 units passed and one failed while writing."""
    path = make_small_lot(tmp_path / "lot", 6)
    bench = FakeBench()
    with (
        open_lot(path) as lot,
        Orchestrator(lot, on_event=lambda e: None, opener=bench.opener) as orch,
    ):
        for i, port in enumerate(["sim://a", "sim://b", "sim://c", "sim://d"]):
            faults = {"writing": 1} if i == 3 else {}
            bench.put(port, FakeDevice(f"24:0a:c4:00:00:{i:02x}", faults=faults))
            orch.add_port(port)
        orch.start_all()
        assert orch.wait_idle(30)
    return path
