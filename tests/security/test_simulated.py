"""A recipe over a real esptool connection: esp32-mock-bootloader with espefuse's virtual eFuses
behind its eFuse registers (one file per simulated device), the station's own device session
writing the host-encrypted regions before the burn and the final lock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from station.flashing.device import WriteRegion, open_device
from station.flashing.simulated import SimulatedDevice
from station.production.security_commands import load
from station.security import JsonlJournal, Provisioner
from station.security.flashenc import decrypt
from tests.security.conftest import espefuse_summary, make_lot


@pytest.mark.slow
@pytest.mark.parametrize("chip", ["esp32c3", "esp32s3", "esp32c6"])
def test_recipe_over_a_simulated_device(tmp_path: Path, rsa_keys: list[bytes], chip: str) -> None:
    folder = tmp_path / "lot"
    folder.mkdir()
    (folder / "sb0.pem").write_bytes(rsa_keys[0])
    (folder / "hmac.key").write_bytes(os.urandom(32))
    lot = make_lot(
        folder,
        chip=chip,
        sign_with=rsa_keys[0],
        security=(
            'recipes = ["nvs_hmac", "flash_encryption", "secure_boot", "final_lock"]\n'
            'hmac_key_id = 5\nhmac_keyfile = "hmac.key"\nsecure_boot_keys = ["sb0.pem"]\n'
        ),
    )
    settings = load(str(lot))[0].settings
    assert settings is not None
    journal = JsonlJournal(tmp_path / "journal.jsonl")
    prov = Provisioner(settings, journal)
    efuse_file = tmp_path / "device.efuse"
    from station.partitions import load_table

    table = load_table(folder / "partitions.csv")
    build = folder / "build"
    plain = (
        WriteRegion(0x8000, (build / "partition-table.bin").read_bytes(), "partition table"),
        WriteRegion(0x10000, (build / "app.bin").read_bytes(), "app"),
    )
    with SimulatedDevice(chip=chip, efuse_file=str(efuse_file)) as dev:
        with open_device(dev.port, chip=chip, no_stub=True, baud=115200) as session:
            keys = prov.keys("SN0001")
            regions = prov.encrypt(keys, plain, table.partitions, bootloader=None, table=0x8000)
            session.write(regions)
            session.verify(regions)
            burned = prov.burn(session.loader, "SN0001")
            assert all(o.burned for o in burned)
            with pytest.raises(Exception, match="flash encryption enabled"):
                session.write(regions)  # esptool's own guard, the reason for the order
            locked = prov.lock(session.loader, "SN0001")
            assert [o.step.id for o in locked] == ["final_lock"]
            app = session.read(0x10000, len(regions[1].data))
        device = dev.mac
    assert keys.xts is not None
    assert decrypt(keys.xts, 0x10000, app) == plain[1].data  # what the chip reads back
    assert set(journal.steps(device)) == {s.id for s in prov.plan.steps}
    summary = espefuse_summary(chip, efuse_file)
    assert summary["KEY_PURPOSE_5"]["value"] == "HMAC_UP"
    assert summary["BLOCK_KEY5"]["readable"] is False
    assert summary["SECURE_BOOT_EN"]["value"] is True
    assert summary["ENABLE_SECURITY_DOWNLOAD"]["value"] is True
    assert summary["MAC"]["value"].startswith(device)  # the mock's MAC, as esptool saw it
