"""A Matter lot on simulated chips: chip-factory and esp_secure_cert written with the unit."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.flashing import open_device, start_simulated_devices
from station.matter import certs
from station.matter.secure_cert import DEV_CERT, parse_secure_cert
from station.nvs import decode_image
from station.production import Orchestrator, open_lot
from tests.matter.pki import Pki
from tests.matter.test_lot import matter_lot
from tests.production.jig import Jig

pytestmark = pytest.mark.slow


def test_matter_units_are_written_and_verified(pki: Pki, tmp_path: Path) -> None:
    folder = tmp_path / "lot"
    lot_file = matter_lot(folder, pki, rows=2)
    lot_file.write_text(lot_file.read_text() + "secure_cert = true\n")
    (folder / "partitions.csv").write_text(
        "nvs, data, nvs, 0x9000, 0x3000,\nesp_secure_cert, 0x3F, , 0xc000, 0x1000,\n"
        "fctry, data, nvs, 0xd000, 0x3000,\nfactory, app, factory, 0x10000, 1M,\n"
    )
    jigs = [Jig(), Jig()]
    devs = start_simulated_devices(2)
    try:
        with open_lot(lot_file) as lot:
            with Orchestrator(lot, on_event=lambda _e: None, no_stub=True, operator="ann") as orch:
                for jig, dev in zip(jigs, devs, strict=True):
                    orch.add_port(jig.port)
                    jig.insert(dev.port)
                orch.start_all()
                assert orch.wait_idle(120)
            assert lot.ledger.count("done") == 2
            sc_part = lot.table.find("esp_secure_cert")
            assert sc_part is not None
            for r in lot.ledger.rows(0, 2):
                dev = next(d for d in devs if d.mac == r.mac)
                with open_device(dev.port, no_stub=True) as session:
                    held = session.read(lot.factory.offset, lot.factory.size)
                    sc = session.read(sc_part.offset, sc_part.size)
                row = lot.row(r.index)
                assert held == lot.image_for(row)
                regions = {x.name: x for x in lot.regions_for(row)}
                assert sc == regions["esp_secure_cert"].data
                chip = decode_image(held).as_dict()["chip-factory"]
                dac = certs.load_certificate(
                    dict((t, d) for t, _s, d in parse_secure_cert(sc))[DEV_CERT]
                )
                assert chip["vendor-id"] == 0xFFF2 and certs.common_name_of(dac.subject)
    finally:
        for d in devs:
            d.stop()
        for j in jigs:
            j.close()
