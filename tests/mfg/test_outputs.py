"""Output files: names as mfg_gen, generate-key, key files never overwritten, no partial lots."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import pytest

import station.mfg.commands as commands
from station.errors import StationError
from station.nvs import hmac_derive_keys, key_partition_image, parse_key_partition
from tests.mfg.conftest import files_under, write
from tests.mfg.reference import official_generate_key

Station = Callable[..., tuple[int, str, str]]


def small_lot(lotdir: Path, rows: int = 3) -> None:
    write(lotdir / "c.csv", "app,namespace,\nserial,data,string\n")
    write(lotdir / "v.csv", "serial\n" + "".join(f"S{i}\n" for i in range(rows)))


def test_prefix_num_names(station: Station, lotdir: Path) -> None:
    small_lot(lotdir)
    code, _out, _err = station(
        "generate",
        "c.csv",
        "v.csv",
        "lot",
        "0x3000",
        "--outdir",
        "o",
        "--prefix_num",
        "8",
        "3",
        "--fileid",
        "serial",
        "--keygen",
    )
    assert code == 0
    assert sorted(files_under(lotdir / "o")) == [
        "bin/lot-008-S0.bin",
        "bin/lot-009-S1.bin",
        "bin/lot-010-S2.bin",
        "csv/lot-008-S0.csv",
        "csv/lot-009-S1.csv",
        "csv/lot-010-S2.csv",
        "keys/keys-lot-008-S0.bin",
        "keys/keys-lot-009-S1.bin",
        "keys/keys-lot-010-S2.bin",
    ]


def test_hmac_keygen_writes_one_hmac_key_per_device(station: Station, lotdir: Path) -> None:
    small_lot(lotdir, 2)
    code, _out, _err = station(
        "generate",
        "c.csv",
        "v.csv",
        "d",
        "0x3000",
        "--outdir",
        "o",
        "--keygen",
        "--key_protect_hmac",
        "--kp_hmac_keygen",
    )
    assert code == 0
    keys = lotdir / "o" / "keys"
    assert sorted(p.name for p in keys.iterdir()) == [
        "hmac-keys-d-1.bin",
        "hmac-keys-d-2.bin",
        "keys-d-1.bin",
        "keys-d-2.bin",
    ]
    for i in ("1", "2"):
        hmac_key = (keys / f"hmac-keys-d-{i}.bin").read_bytes()
        assert len(hmac_key) == 32
        assert (keys / f"keys-d-{i}.bin").read_bytes() == key_partition_image(
            hmac_derive_keys(hmac_key)
        )
        assert (keys / f"hmac-keys-d-{i}.bin").stat().st_mode & 0o777 == 0o600
    assert (keys / "hmac-keys-d-1.bin").read_bytes() != (keys / "hmac-keys-d-2.bin").read_bytes()


def test_a_failure_midway_leaves_nothing(
    station: Station, lotdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_lot(lotdir, 4)
    real = commands.build_row_image
    calls = []

    def failing(lot, row, size, **kw):  # type: ignore[no-untyped-def]
        calls.append(row.index)
        if row.index == 2:
            raise StationError.at("v.csv", "disk on fire", line=row.line)
        return real(lot, row, size, **kw)

    monkeypatch.setattr(commands, "build_row_image", failing)
    code, out, err = station(
        "generate", "c.csv", "v.csv", "d", "0x3000", "--outdir", "o", "--keygen"
    )
    assert (code, out, err) == (2, "", "v.csv:4:0: -: disk on fire\n")
    assert calls == [0, 1, 2]
    assert files_under(lotdir / "o") == {}


def test_generate_key_like_the_official_tool(station: Station, lotdir: Path) -> None:
    code, out, _err = station("generate-key", "--keyfile", "k", "--outdir", "o")
    assert code == 0 and out == f"Created encryption keys: {Path('o/keys/k.bin')}\n"
    data = (lotdir / "o" / "keys" / "k.bin").read_bytes()
    parse_key_partition(data)  # a valid key partition image (length and CRC)
    assert (lotdir / "o" / "keys" / "k.bin").stat().st_mode & 0o777 == 0o600
    # an explicit name that exists is an error, never overwritten
    code, _out, err = station("generate-key", "--keyfile", "k.bin", "--outdir", "o")
    assert code == 2 and "k.bin:0:0: -: already exists; not overwritten" in err
    assert (lotdir / "o" / "keys" / "k.bin").read_bytes() == data


def test_generate_key_hmac_matches_official(station: Station, lotdir: Path) -> None:
    (lotdir / "hmac.bin").write_bytes(bytes(range(100, 132)))
    code, _out, _err = station(
        "generate-key",
        "--keyfile",
        "ours.bin",
        "--key_protect_hmac",
        "--kp_hmac_inputkey",
        "hmac.bin",
    )
    assert code == 0
    theirs = official_generate_key(lotdir, "theirs.bin", hmac_inputkey=lotdir / "hmac.bin")
    assert (lotdir / "keys" / "ours.bin").read_bytes() == theirs.read_bytes()


def test_generate_key_hmac_keygen(station: Station, lotdir: Path) -> None:
    code, out, _err = station(
        "generate-key", "--keyfile", "k", "--key_protect_hmac", "--kp_hmac_keygen"
    )
    assert code == 0
    hmac_key = (lotdir / "keys" / "hmac-k.bin").read_bytes()
    assert (lotdir / "keys" / "k.bin").read_bytes() == key_partition_image(
        hmac_derive_keys(hmac_key)
    )
    assert out.splitlines()[0] == f"Created HMAC key: {Path('keys/hmac-k.bin')}"


def test_timestamped_key_files_of_one_minute_never_collide(
    station: Station, lotdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def]
            return cls(2026, 11, 22, 3, 4, 59)

    monkeypatch.setattr(commands.datetime, "datetime", Frozen)
    outputs = []
    for _ in range(3):
        code, out, _err = station("generate-key")
        assert code == 0
        outputs.append(out.strip())
    assert sorted(p.name for p in (lotdir / "keys").iterdir()) == [
        "keys-11-22_03-04-2.bin",
        "keys-11-22_03-04-3.bin",
        "keys-11-22_03-04.bin",
    ]
    assert len({p.read_bytes() for p in (lotdir / "keys").iterdir()}) == 3


@pytest.fixture
def forked_workers() -> None:
    """The test patches the parent process, which only forked workers inherit; the generator
    forks only while the process has one thread. Checked when the test runs, not when it is
    collected: a thread an earlier test left behind gets a few seconds to end."""
    import multiprocessing
    import threading
    import time

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    deadline = time.monotonic() + 10
    while threading.active_count() > 1 and time.monotonic() < deadline:
        other = next((t for t in threading.enumerate() if t is not threading.main_thread()), None)
        if other is not None:
            other.join(0.1)
    if threading.active_count() > 1:
        names = ", ".join(t.name for t in threading.enumerate())
        pytest.skip(f"other threads run in this process ({names}): workers would not fork")


needs_fork = pytest.mark.usefixtures("forked_workers")


@pytest.mark.slow
def test_worker_processes_give_the_same_files(station: Station, lotdir: Path) -> None:
    small_lot(lotdir, 40)
    for jobs in ("1", "3"):
        code, _out, _err = station(
            "generate",
            "c.csv",
            "v.csv",
            "d",
            "0x3000",
            "--outdir",
            f"o{jobs}",
            "--jobs",
            jobs,
            "--fileid",
            "serial",
        )
        assert code == 0
    assert files_under(lotdir / "o1") == files_under(lotdir / "o3")
    assert len(files_under(lotdir / "o3")) == 80


@pytest.mark.slow
@needs_fork
def test_a_failing_worker_leaves_nothing(
    station: Station, lotdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_lot(lotdir, 600)
    real = commands.build_row_image

    def failing(lot, row, size, **kw):  # type: ignore[no-untyped-def]
        if row.index == 450:
            raise StationError.at("v.csv", "disk on fire", line=row.line)
        return real(lot, row, size, **kw)

    monkeypatch.setattr(commands, "build_row_image", failing)
    code, out, err = station(
        "generate", "c.csv", "v.csv", "d", "0x3000", "--outdir", "o", "--keygen", "--jobs", "2"
    )
    assert (code, out, err) == (2, "", "v.csv:452:0: -: disk on fire\n")
    assert files_under(lotdir / "o") == {}


def test_jobs_must_be_positive(station: Station, lotdir: Path) -> None:
    small_lot(lotdir)
    code, _out, err = station("generate", "c.csv", "v.csv", "d", "0x3000", "--jobs", "0")
    assert code == 2 and err == "command line:0:0: --jobs: must be 1 or more, not 0\n"


def test_the_job_pickles_for_spawned_workers(lotdir: Path) -> None:
    import pickle

    from station.mfg import build_row_image, load_mfg

    small_lot(lotdir)
    write(lotdir / "c.csv", "app,namespace,\nserial,data,string\ncert,file,binary\n")
    write(lotdir / "v.csv", "serial,cert\nA,c.csv\nB,c.csv\n")
    lot = load_mfg("c.csv", "v.csv", size=0x3000)
    job = commands._Job(
        lot,
        0x3000,
        2,
        commands.KeyPlan("none"),
        "out",
        tuple(commands._Device(r, f"d-{r.index}") for r in lot.rows),
    )
    copy = pickle.loads(pickle.dumps(job))  # noqa: S301 - our own bytes, as the pool does
    assert copy.devices == job.devices
    assert build_row_image(copy.lot, copy.lot.rows[1], 0x3000) == build_row_image(
        lot, lot.rows[1], 0x3000
    )


@pytest.mark.parametrize("unnamed", [True, False])
def test_write_new_never_overwrites(
    lotdir: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    from station.mfg import output

    if not unnamed:  # the portable way: a named temporary file, then a hard link
        monkeypatch.setattr(output, "_write_unnamed", lambda *a: False)
    output.write_new(lotdir / "a.bin", b"first", secret=True)
    with pytest.raises(StationError, match="already exists; not overwritten"):
        output.write_new(lotdir / "a.bin", b"second")
    assert (lotdir / "a.bin").read_bytes() == b"first"
    assert (lotdir / "a.bin").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in lotdir.iterdir()] == ["a.bin"]  # no temporary file left


def test_direct_writes_never_overwrite_and_leave_no_partial_file(
    lotdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from station.mfg import output

    output.write_new(lotdir / "a.bin", b"first", atomic=False)
    with pytest.raises(StationError, match="already exists; not overwritten"):
        output.write_new(lotdir / "a.bin", b"second", atomic=False)
    assert (lotdir / "a.bin").read_bytes() == b"first"

    def full(fd: int, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output, "_write_all", full)
    with pytest.raises(StationError, match=r"b\.bin:0:0: -: cannot write: No space left on device"):
        output.write_new(lotdir / "b.bin", b"data", atomic=False)
    with pytest.raises(StationError, match="cannot write: No space left on device"):
        output.write_new(lotdir / "k.bin", b"key", secret=True, atomic=False)  # atomic anyway
    assert [p.name for p in lotdir.iterdir()] == ["a.bin"]


def test_unwritable_output_is_a_located_error(station: Station, lotdir: Path) -> None:
    small_lot(lotdir)
    write(lotdir / "afile", "not a folder")
    code, out, err = station("generate", "c.csv", "v.csv", "d", "0x3000", "--outdir", "afile/o")
    assert (code, out) == (2, "")
    assert err.startswith(f"{Path('afile/o/bin')}:0:0: -: cannot create the folder: ")
    assert "Traceback" not in err


def test_generate_key_into_a_new_subfolder(station: Station, lotdir: Path) -> None:
    code, _out, _err = station("generate-key", "--keyfile", "line3/k")
    assert code == 0
    parse_key_partition((lotdir / "keys" / "line3" / "k.bin").read_bytes())


@pytest.mark.slow
@needs_fork
def test_a_dying_worker_leaves_nothing(
    station: Station, lotdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    small_lot(lotdir, 600)
    real = commands.build_row_image

    def dying(lot, row, size, **kw):  # type: ignore[no-untyped-def]
        if row.index == 300:
            os._exit(3)  # as if the system killed the worker
        return real(lot, row, size, **kw)

    monkeypatch.setattr(commands, "build_row_image", dying)
    code, out, err = station(
        "generate", "c.csv", "v.csv", "d", "0x3000", "--outdir", "o", "--jobs", "2"
    )
    assert (code, out) == (1, "")
    assert err == (
        "o:0:0: -: a worker process stopped unexpectedly (out of memory?); no file "
        "was kept; try again with --jobs 1\n"
    )
    assert files_under(lotdir / "o") == {}


@pytest.mark.skipif(__import__("sys").platform == "win32", reason="POSIX file modes")
def test_every_output_is_for_its_owner_only(station: Station, lotdir: Path) -> None:
    """Images and intermediate CSVs hold each device's values, keys its keys: 0600 files in
    0700 folders (mfg_gen writes them 0644, readable by every account)."""
    small_lot(lotdir)
    args = ["generate", "c.csv", "v.csv", "lot", "0x3000", "--outdir", "o", "--keygen"]
    code, _out, err = station(*args, "--key_protect_hmac", "--kp_hmac_keygen")
    assert code == 0, err
    out = lotdir / "o"
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) == 3 * 4
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {"0o600"}
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {
        "bin": 0o700,
        "csv": 0o700,
        "keys": 0o700,
    }
    code, _out, err = station("generate-key", "--outdir", "g")
    assert code == 0, err
    (key,) = (lotdir / "g" / "keys").iterdir()
    assert key.stat().st_mode & 0o777 == 0o600
    assert (lotdir / "g" / "keys").stat().st_mode & 0o777 == 0o700
