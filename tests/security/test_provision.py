"""Whole recipes on espefuse's virtual eFuses, for every chip family with the features; the
result read back with the real ``espefuse summary``; resume after a stop between any two steps."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from station.production.security_commands import load
from station.security import (
    BoardRefused,
    JsonlJournal,
    Kind,
    Phase,
    Provisioner,
    State,
    chip_caps,
)
from tests.security.conftest import CHIPS, espefuse_summary, key_for, make_lot, virtual_esp


def _lot_for(tmp_path: Path, chip: str, rsa_keys: list[bytes], ecdsa_keys: list[bytes]) -> Path:
    caps = chip_caps(chip)
    assert caps is not None
    key = key_for(chip, rsa_keys, ecdsa_keys)
    recipes = [
        r
        for r, ok in (
            ("nvs_hmac", caps.hmac),
            ("flash_encryption", True),
            ("secure_boot", True),
            ("final_lock", True),
        )
        if ok
    ]
    security = (
        f"recipes = {recipes!r}\n".replace("'", '"')
        + ('hmac_key_id = 3\nhmac_keyfile = "hmac.key"\n' if caps.hmac else "")
        + f"xts_aes = {256 if caps.xts_aes_256 else 128}\n"
        + 'secure_boot_keys = ["sb0.pem"]\n'
    )
    folder = tmp_path / chip
    folder.mkdir()
    (folder / "sb0.pem").write_bytes(key)
    (folder / "hmac.key").write_bytes(os.urandom(32))
    return make_lot(folder, chip=chip, security=security, sign_with=key)


@pytest.mark.slow
@pytest.mark.parametrize("chip", CHIPS)
def test_whole_recipe_on_virtual_efuses(
    tmp_path: Path, chip: str, rsa_keys: list[bytes], ecdsa_keys: list[bytes]
) -> None:
    lot = _lot_for(tmp_path, chip, rsa_keys, ecdsa_keys)
    checked, _lot, units = load(str(lot))
    settings = checked.settings
    assert settings is not None and units == ["SN0001", "SN0002", "SN0003"]
    journal = JsonlJournal(tmp_path / "journal.jsonl")
    prov = Provisioner(settings, journal)
    efuse_file = tmp_path / "unit.efuse"
    burned = prov.burn(virtual_esp(chip, efuse_file), "SN0001")
    assert all(o.burned for o in burned)
    assert [o.step.id for o in burned] == [s.id for s in prov.plan.phase(Phase.BURN)]
    locked = prov.lock(virtual_esp(chip, efuse_file), "SN0001")
    assert [o.step.id for o in locked] == ["final_lock"]

    summary = espefuse_summary(chip, efuse_file)
    caps = chip_caps(chip)
    assert caps is not None
    for step in prov.plan.steps:
        if step.kind is not Kind.KEY:
            continue
        n = step.target.removeprefix("BLOCK_KEY")
        assert summary[f"KEY_PURPOSE_{n}"]["value"] == step.purpose
        assert summary[f"KEY_PURPOSE_{n}"]["writeable"] is False
        assert summary[step.target]["readable"] is (not step.read_protect)
        assert summary[step.target]["writeable"] is False
        if step.digest is not None:
            assert summary[step.target]["value"] == step.digest.hex(" ")
    assert int(summary["SPI_BOOT_CRYPT_CNT"]["raw_value"], 0) == caps.crypt_cnt_max
    assert summary["SECURE_BOOT_EN"]["value"] is True
    assert summary["SECURE_BOOT_KEY_REVOKE1"]["value"] is True
    assert summary["SECURE_BOOT_KEY_REVOKE0"]["value"] is False
    assert summary["RD_DIS"]["writeable"] is False
    assert summary["ENABLE_SECURITY_DOWNLOAD"]["value"] is True

    # a second run (the board plugged in again) burns nothing
    again = prov.burn(virtual_esp(chip, efuse_file), "SN0001")
    assert not any(o.burned for o in again)
    assert all(o.before is State.DONE for o in again)


class Stop(Exception):
    pass


class CrashingJournal(JsonlJournal):
    """Stops the run at one step: before its burn (``at='begin'``) or after it (``'done'``)."""

    def __init__(self, path: Path, step: str, at: str) -> None:
        super().__init__(path)
        self.stop_step, self.at = step, at

    def begin(self, unit: str, device: str, step: str) -> None:
        if self.at == "begin" and step == self.stop_step:
            raise Stop(step)
        super().begin(unit, device, step)

    def done(self, unit: str, device: str, step: str) -> None:
        if self.at == "done" and step == self.stop_step:
            raise Stop(step)
        super().done(unit, device, step)


@pytest.fixture(scope="module")
def c3_lot(tmp_path_factory: pytest.TempPathFactory, rsa_keys: list[bytes]) -> Path:
    folder = tmp_path_factory.mktemp("c3")
    (folder / "sb0.pem").write_bytes(rsa_keys[0])
    (folder / "hmac.key").write_bytes(os.urandom(32))
    security = (
        'recipes = ["nvs_hmac", "flash_encryption", "secure_boot", "final_lock"]\n'
        'hmac_key_id = 0\nhmac_keyfile = "hmac.key"\nsecure_boot_keys = ["sb0.pem"]\n'
    )
    return make_lot(folder, chip="esp32c3", security=security, sign_with=rsa_keys[0])


def _reference(c3_lot: Path, tmp_path: Path) -> tuple[Provisioner, bytes]:
    """An uninterrupted run's eFuse memory for unit SN0001 (its escrowed key)."""
    settings = load(str(c3_lot))[0].settings
    assert settings is not None
    prov = Provisioner(settings, JsonlJournal(tmp_path / "ref.jsonl"))
    f = tmp_path / "ref.efuse"
    prov.burn(virtual_esp("esp32c3", f), "SN0001")
    prov.lock(virtual_esp("esp32c3", f), "SN0001")
    return prov, f.read_bytes()


@pytest.fixture(scope="module")
def c3_reference(
    c3_lot: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Provisioner, bytes]:
    return _reference(c3_lot, tmp_path_factory.mktemp("reference"))


STEP_IDS = [
    "nvs_hmac.key",
    "flash_encryption.key0",
    "flash_encryption.enable",
    "flash_encryption.release",
    "secure_boot.digest0",
    "secure_boot.enable",
    "secure_boot.revoke",
    "secure_boot.release",
    "flash_encryption.wp_security",
    "secure_boot.wp_rd_dis",
    "final_lock",
]


@pytest.mark.slow
@pytest.mark.parametrize("at", ["begin", "done"])
@pytest.mark.parametrize("stop", STEP_IDS)
def test_stop_between_steps_and_resume(
    c3_lot: Path, c3_reference: tuple[Provisioner, bytes], tmp_path: Path, stop: str, at: str
) -> None:
    """Stop before or right after any step (power cut, unplug, crash), come back with a new
    connection and a journal read from disk: the rest is burned, nothing twice, and the chip
    ends exactly like an uninterrupted run's."""
    prov_ref, reference = c3_reference
    assert [s.id for s in prov_ref.plan.steps] == STEP_IDS
    settings = prov_ref.settings
    jpath = tmp_path / "journal.jsonl"
    f = tmp_path / "unit.efuse"
    crashing = Provisioner(settings, CrashingJournal(jpath, stop, at))
    with pytest.raises(Stop):
        crashing.burn(virtual_esp("esp32c3", f), "SN0001")
        crashing.lock(virtual_esp("esp32c3", f), "SN0001")
    before_resume = f.read_bytes()
    resumed = Provisioner(settings, JsonlJournal(jpath))  # a new process: the journal from disk
    outcomes = resumed.burn(virtual_esp("esp32c3", f), "SN0001")
    outcomes += resumed.lock(virtual_esp("esp32c3", f), "SN0001")
    again = [o.step.id for o in outcomes if o.burned]
    done_first = STEP_IDS[: STEP_IDS.index(stop) + (at == "done")]
    assert again == STEP_IDS[len(done_first) :]  # each step burned once across both runs
    assert f.read_bytes() == reference
    assert (before_resume == reference) is (stop == "final_lock" and at == "done")


def test_key_burned_but_not_its_purpose_is_completed(c3_lot: Path, tmp_path: Path) -> None:
    """A cut between espefuse's two block writes (the key block written, BLOCK0's purpose and
    protections not): the key is recognised as ours and only BLOCK0 is completed."""
    settings = load(str(c3_lot))[0].settings
    assert settings is not None
    jpath = tmp_path / "j.jsonl"
    prov = Provisioner(settings, JsonlJournal(jpath))
    f = tmp_path / "unit.efuse"
    esp = virtual_esp("esp32c3", f)
    device = prov.inspect(esp, "SN0001")[0]
    hmac = settings.hmac_keyfile.read_bytes()  # type: ignore[union-attr]
    prov.journal.begin("SN0001", device, "nvs_hmac.key")
    from station.security.chips import virtual_commands
    from station.security.quiet import quiet

    commands = virtual_commands("esp32c3", str(f))
    with quiet():
        commands.burn_block_data(["BLOCK_KEY0"], [io.BytesIO(hmac)])  # type: ignore[attr-defined]
    _dev, states = prov.inspect(virtual_esp("esp32c3", f), "SN0001")
    assert dict((s.id, st) for s, st in states)["nvs_hmac.key"] is State.PARTIAL
    outcomes = prov.burn(virtual_esp("esp32c3", f), "SN0001")
    assert outcomes[0].before is State.PARTIAL and outcomes[0].burned
    summary = espefuse_summary("esp32c3", f)
    assert summary["KEY_PURPOSE_0"]["value"] == "HMAC_UP"
    assert summary["BLOCK_KEY0"]["readable"] is False


def test_hmac_key_matches_espefuse_burn_key(tmp_path: Path) -> None:
    """The peer: the NVS HMAC recipe leaves the chip exactly as ``espefuse burn-key
    BLOCK_KEY2 hmac.key HMAC_UP`` does."""
    import subprocess
    import sys

    folder = tmp_path / "lot"
    folder.mkdir()
    (folder / "hmac.key").write_bytes(os.urandom(32))
    lot = make_lot(
        folder,
        chip="esp32c6",
        build=False,
        security=('recipes = ["nvs_hmac"]\nhmac_key_id = 2\nhmac_keyfile = "hmac.key"\n'),
    )
    settings = load(str(lot))[0].settings
    assert settings is not None
    ours = tmp_path / "ours.efuse"
    Provisioner(settings, JsonlJournal(tmp_path / "j.jsonl")).burn(
        virtual_esp("esp32c6", ours), "SN0001"
    )
    theirs = tmp_path / "theirs.efuse"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "espefuse",
            "--virt",
            "--chip",
            "esp32c6",
            "--path-efuse-file",
            str(theirs),
            "--do-not-confirm",
            "burn-key",
            "BLOCK_KEY2",
            str(folder / "hmac.key"),
            "HMAC_UP",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert ours.read_bytes() == theirs.read_bytes()


def _burn_foreign(f: Path, chip: str, *args: str) -> None:
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "espefuse",
            "--virt",
            "--chip",
            chip,
            "--path-efuse-file",
            str(f),
            "--do-not-confirm",
            *args,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("burn-key", "BLOCK_KEY1", "KEY", "XTS_AES_128_KEY"), "not burn for this unit"),
        (("burn-key", "BLOCK_KEY0", "KEY", "HMAC_UP"), "not burn for this unit"),
        (("burn-key", "BLOCK_KEY4", "KEY", "XTS_AES_128_KEY"), "different recipe"),
        (("burn-key", "BLOCK_KEY1", "KEY", "HMAC_DOWN_ALL"), "purpose HMAC_DOWN_ALL"),
        (("burn-efuse", "SPI_BOOT_CRYPT_CNT", "1"), "SPI_BOOT_CRYPT_CNT = 1"),
    ],
)
def test_foreign_boards_are_refused_untouched(
    c3_lot: Path, tmp_path: Path, args: tuple[str, ...], reason: str
) -> None:
    settings = load(str(c3_lot))[0].settings
    assert settings is not None
    f = tmp_path / "unit.efuse"
    key = tmp_path / "KEY"
    key.write_bytes(os.urandom(32))
    _burn_foreign(f, "esp32c3", *[str(key) if a == "KEY" else a for a in args])
    before = f.read_bytes()
    prov = Provisioner(settings, JsonlJournal(tmp_path / "j.jsonl"))
    with pytest.raises(BoardRefused) as err:
        prov.burn(virtual_esp("esp32c3", f), "SN0001")
    assert any(reason in r for r in err.value.reasons), err.value.reasons
    assert err.value.exit_code == 1
    assert f.read_bytes() == before
    assert prov.journal.steps(next(iter(err.value.problems)).file) == {}


def test_a_board_with_secure_boot_and_a_lot_without_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "lot"
    folder.mkdir()
    (folder / "hmac.key").write_bytes(os.urandom(32))
    lot = make_lot(
        folder,
        chip="esp32c3",
        build=False,
        security=('recipes = ["nvs_hmac"]\nhmac_key_id = 0\nhmac_keyfile = "hmac.key"\n'),
    )
    settings = load(str(lot))[0].settings
    assert settings is not None
    f = tmp_path / "unit.efuse"
    _burn_foreign(f, "esp32c3", "burn-efuse", "SECURE_BOOT_EN", "1")
    before = f.read_bytes()
    with pytest.raises(BoardRefused, match="no secure_boot recipe"):
        Provisioner(settings, JsonlJournal(tmp_path / "j.jsonl")).burn(
            virtual_esp("esp32c3", f), "SN0001"
        )
    assert f.read_bytes() == before


def test_lock_refuses_before_the_burn_steps(c3_lot: Path, tmp_path: Path) -> None:
    settings = load(str(c3_lot))[0].settings
    assert settings is not None
    prov = Provisioner(settings, JsonlJournal(tmp_path / "j.jsonl"))
    with pytest.raises(BoardRefused, match="cannot lock"):
        prov.lock(virtual_esp("esp32c3", tmp_path / "u.efuse"), "SN0001")


def test_development_mode(tmp_path: Path, rsa_keys: list[bytes]) -> None:
    folder = tmp_path / "lot"
    folder.mkdir()
    (folder / "sb0.pem").write_bytes(rsa_keys[0])
    lot = make_lot(
        folder,
        chip="esp32s3",
        sign_with=rsa_keys[0],
        security=(
            'recipes = ["flash_encryption", "secure_boot"]\nmode = "development"\n'
            'secure_boot_keys = ["sb0.pem"]\n'
        ),
    )
    settings = load(str(lot))[0].settings
    assert settings is not None
    prov = Provisioner(settings, JsonlJournal(tmp_path / "j.jsonl"))
    f = tmp_path / "u.efuse"
    prov.burn(virtual_esp("esp32s3", f), "SN0001")
    summary = espefuse_summary("esp32s3", f)
    assert int(summary["SPI_BOOT_CRYPT_CNT"]["raw_value"], 0) == 1
    assert summary["DIS_DOWNLOAD_MANUAL_ENCRYPT"]["value"] is False  # dev: esptool --encrypt ok
    assert summary["SECURE_BOOT_KEY_REVOKE1"]["value"] is False  # slots kept for later keys
    enable = next(s for s in prov.plan.steps if s.id == "flash_encryption.enable")
    assert not enable.irreversible  # SPI_BOOT_CRYPT_CNT = 1 can be turned off


KILL_CHILD = """
import os, signal, sys
from station.security import JsonlJournal, Provisioner
from station.production.security_commands import load
from tests.security.conftest import virtual_esp

lot, efuse, journal, stop = sys.argv[1:5]

class Dying(JsonlJournal):
    def done(self, unit, device, step):
        if step == stop:
            os.kill(os.getpid(), signal.SIGKILL)  # burned, not recorded: no clean-up runs
        super().done(unit, device, step)

prov = Provisioner(load(lot)[0].settings, Dying(journal))
prov.burn(virtual_esp("esp32c3", efuse), "SN0001")
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
@pytest.mark.parametrize(
    "stop", ["flash_encryption.key0", "secure_boot.enable", "secure_boot.wp_rd_dis"]
)
def test_killed_after_a_burn_before_its_record(
    c3_lot: Path, c3_reference: tuple[Provisioner, bytes], tmp_path: Path, stop: str
) -> None:
    """SIGKILL right after a step's eFuses are burned, before the journal says so: the next
    run finds the step burned and begun, takes it as done, and burns only the rest."""
    root = Path(__file__).resolve().parents[2]
    f, jpath = tmp_path / "unit.efuse", tmp_path / "journal.jsonl"
    child = subprocess.run(
        [sys.executable, "-c", KILL_CHILD, str(c3_lot), str(f), str(jpath), stop],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    prov_ref, reference = c3_reference
    resumed = Provisioner(prov_ref.settings, JsonlJournal(jpath))
    outcomes = resumed.burn(virtual_esp("esp32c3", f), "SN0001")
    outcomes += resumed.lock(virtual_esp("esp32c3", f), "SN0001")
    burned = [o.step.id for o in outcomes if o.burned]
    assert burned == STEP_IDS[STEP_IDS.index(stop) + 1 :]
    assert f.read_bytes() == reference


def test_espefuse_says_nothing_on_the_console(
    c3_lot: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = load(str(c3_lot))[0].settings
    assert settings is not None
    prov = Provisioner(settings, JsonlJournal(tmp_path / "j.jsonl"))
    prov.burn(virtual_esp("esp32c3", tmp_path / "u.efuse"), "SN0001")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_a_chip_that_answers_no_efuse_reads(c3_lot: Path, tmp_path: Path) -> None:
    """Reading the eFuses fails (a chip in secure download mode, a cable pulled): a device
    failure with the reason, not a traceback."""
    from station.errors import StationError

    class Silent:
        CHIP_NAME = "ESP32-C3"

        def read_reg(self, addr: int) -> int:
            raise OSError("the port is gone")

    settings = load(str(c3_lot))[0].settings
    assert settings is not None
    prov = Provisioner(settings, JsonlJournal(tmp_path / "j.jsonl"))
    with pytest.raises(StationError, match="cannot read the eFuses") as err:
        prov.burn(Silent(), "SN0001")
    assert err.value.exit_code == 1
