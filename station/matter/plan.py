"""What ``station matter`` is asked to do: its options checked as esp-matter-mfg-tool 1.0.29
checks them (same combinations accepted and refused), every problem at once with its place, into
a :class:`Plan`; writing the devices' files is :mod:`station.matter.commands`.

Imports station.errors and the Matter modules beside it (certificates, payload, SPAKE2+).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import datetime as dt
import io
import os
import re
import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from station.errors import ProblemList
from station.matter import certs
from station.matter.factory import (
    ExtraKey,
    MatterConfig,
    SupportedMode,
)
from station.matter.payload import (
    DISCRIMINATOR_MAX,
    CommissioningFlow,
    discovery_problem,
    passcode_problem,
)
from station.matter.spake2p import ITERATIONS_MAX, ITERATIONS_MIN, verifier_matches

CLI = "command line"


SERIAL_MAX = 16  # the tool's limit for --serial-num


def _int(problems: ProblemList, option: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(str(text), 0)
    except ValueError:
        problems.add(CLI, 0, 0, option, f"not a number: {text!r}")
        return None


def _range(
    problems: ProblemList, option: str, value: int | None, lo: int, hi: int, what: str
) -> None:
    if value is not None and not lo <= value <= hi:
        problems.add(CLI, 0, 0, option, f"{what} {value} is out of range ({lo}..{hi:#x})")


def _length(problems: ProblemList, option: str, text: str | None, lo: int, hi: int) -> None:
    if text is not None and not lo <= len(text) <= hi:
        problems.add(CLI, 0, 0, option, f"must be {lo} to {hi} characters, not {len(text)}")


def _read(problems: ProblemList, option: str, path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        problems.add(path, 0, 0, option, "file not found")
    except IsADirectoryError:
        problems.add(path, 0, 0, option, "is a folder, not a file")
    except OSError as err:
        problems.add(path, 0, 0, option, f"cannot read: {err.strerror or err}")
    return None


def _cert(problems: ProblemList, option: str, path: str | None) -> Any:
    data = _read(problems, option, path)
    if data is None or path is None:
        return None
    try:
        return certs.load_certificate(data)
    except ValueError:
        problems.add(path, 0, 0, option, "is not a certificate (PEM or DER)")
        return None


def _key(problems: ProblemList, option: str, path: str | None, password: str | None) -> Any:
    data = _read(problems, option, path)
    if data is None or path is None:
        return None
    try:
        return certs.load_private_key(data, password.encode() if password else None)
    except (ValueError, TypeError) as err:
        problems.add(path, 0, 0, option, f"is not a usable EC private key ({err})")
        return None


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _valid_from(problems: ProblemList, text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue
    problems.add(CLI, 0, 0, "--valid-from", f"{text!r}: write YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS")
    return None


def _mfg_date(problems: ProblemList, text: str | None) -> None:
    if text is None:
        return
    if len(text) >= 5 and text[4] == "-":
        ok = len(text) in (10, 18) and _DATE.fullmatch(text[:10]) is not None
        want = "YYYY-MM-DD (length 10, or 18 with 8 manufacturer characters)"
    else:
        ok = len(text) in (8, 16) and text[:8].isdigit() and text[:8].isascii()
        want = "YYYYMMDD (length 8, or 16 with 8 manufacturer characters)"
    if not ok:
        problems.add(CLI, 0, 0, "--mfg-date", f"{text!r}: the date must start with {want}")


def _fixed_labels(
    problems: ProblemList, labels: Sequence[str] | None
) -> tuple[tuple[int, str, str], ...] | None:
    if labels is None:
        return None
    out = []
    for text in labels:
        parts = text.split("/")
        if (
            len(parts) != 3
            or not re.fullmatch(r"[0-9a-fA-F]{1,4}", parts[0])
            or not 0 < len(parts[1]) < 16
            or not 0 < len(parts[2]) < 16
        ):
            problems.add(
                CLI,
                0,
                0,
                "--fixed-labels",
                f"{text!r}: write ENDPOINT/LABEL/VALUE, each 1-15 characters",
            )
            continue
        out.append((int(parts[0], 16), parts[1], parts[2]))
    return tuple(out)


def _supported_modes(
    problems: ProblemList, modes: Sequence[str] | None
) -> tuple[SupportedMode, ...] | None:
    if modes is None:
        return None
    out = []
    for text in modes:
        parts = text.split("/")
        try:
            if len(parts) not in (3, 4):
                raise ValueError
            tags: list[tuple[int, int]] = []
            if len(parts) == 4:
                for tag in parts[3].split(", "):
                    value, mfg = tag.split("\\")
                    tags.append((int(value), int(mfg, 16)))
            out.append(SupportedMode(int(parts[2]), parts[1], int(parts[0]), tuple(tags)))
        except ValueError:
            problems.add(
                CLI,
                0,
                0,
                "--supported-modes",
                f"{text!r}: write MODE/LABEL/ENDPOINT[/VALUE\\MFG, …]",
            )
    return tuple(out)


@dataclass(frozen=True)
class Plan:
    """A checked command line: what to make, and from what."""

    config: MatterConfig
    count: int
    size: int
    outdir: Path
    generate_bin: bool
    encrypt: bool
    secure_cert: bool
    passcode: int | None
    discriminator: int | None
    salt: bytes | None
    verifier: bytes | None
    serial_num: str | None
    rd_id_uid: bytes | None
    dac: tuple[bytes, bytes] | None
    dac_uuid: str | None
    paa_mode: bool
    paa_pai: tuple[Any, Any] | None  # the PAI made from the PAA: (cert, key)
    extra_rows: tuple[tuple[tuple[str, str], ...], ...]
    extra_lines: tuple[int, ...]
    mcsv: str | None


def _extras(
    problems: ProblemList, args: argparse.Namespace
) -> tuple[tuple[ExtraKey, ...], list[tuple[tuple[str, str], ...]], list[int]]:
    if (args.csv is None) != (args.mcsv is None):
        problems.add(
            CLI, 0, 0, "--csv" if args.mcsv is None else "--mcsv", "--csv and --mcsv go together"
        )
        return (), [], []
    if args.csv is None:
        return (), [], []
    keys: list[ExtraKey] = []
    text = _read(problems, "--csv", args.csv)
    values = _read(problems, "--mcsv", args.mcsv)
    if text is None or values is None:
        return (), [], []
    namespace = "chip-factory"
    reader = csv.reader(io.StringIO(text.decode("utf-8", "replace")))
    for row in reader:
        line = reader.line_num
        if not row or not "".join(row).strip():
            continue
        if "namespace" in row:
            namespace = row[0]
            continue
        if len(row) < 3:
            problems.add(args.csv, line, 1, row[0], "write key,type,encoding")
            continue
        if row[1] not in ("data", "file"):
            problems.add(args.csv, line, 2, row[0], f"type {row[1]!r} must be data or file")
        keys.append(ExtraKey(namespace, row[0], row[1], row[2]))
    rows: list[tuple[tuple[str, str], ...]] = []
    lines: list[int] = []
    reader = csv.reader(io.StringIO(values.decode("utf-8", "replace")))
    header = next(reader, [])
    known = {k.key for k in keys}
    for col, name in enumerate(header, 1):
        if name not in known:
            problems.add(args.mcsv, 1, col, name, f"not a key of {args.csv}")
    for key in keys:
        if key.key not in header:
            problems.add(args.mcsv, 1, 1, key.key, f"no column for this key of {args.csv}")
    for row in reader:
        lines.append(reader.line_num)
        rows.append(tuple(zip(header, row, strict=False)))
    return tuple(keys), rows, lines


def check(args: argparse.Namespace, now: dt.datetime | None = None) -> Plan:
    """Every problem of the command line and its files at once, or the plan."""
    now = now or dt.datetime.now(dt.timezone.utc)
    problems = ProblemList()
    count = _int(problems, "--count", args.count)
    size = _int(problems, "--size", args.size)
    passcode = _int(problems, "--passcode", args.passcode)
    discriminator = _int(problems, "--discriminator", args.discriminator)
    flow = _int(problems, "--commissioning-flow", args.commissioning_flow)
    discovery = _int(problems, "--discovery-mode", args.discovery_mode)
    iterations = _int(problems, "--iteration-count", args.iteration_count)
    lifetime = _int(problems, "--lifetime", args.lifetime)
    hw_ver = _int(problems, "--hw-ver", args.hw_ver)
    vid = _int(problems, "--vendor-id", args.vendor_id)
    pid = _int(problems, "--product-id", args.product_id)
    efuse_key_id = _int(problems, "--efuse-key-id", args.efuse_key_id)

    if flow is not None and flow not in (0, 1, 2):
        problems.add(
            CLI,
            0,
            0,
            "--commissioning-flow",
            f"{flow}: use 0 (standard), 1 (user intent) or 2 (custom)",
        )
        flow = None
    if discovery is not None and (msg := discovery_problem(discovery)):
        problems.add(CLI, 0, 0, "--discovery-mode", msg)
    if passcode is not None and (msg := passcode_problem(passcode)):
        problems.add(CLI, 0, 0, "--passcode", msg)
    _range(problems, "--discriminator", discriminator, 0, DISCRIMINATOR_MAX, "discriminator")
    _range(problems, "--vendor-id", vid, 0, 0xFFFF, "vendor ID")
    _range(problems, "--product-id", pid, 0, 0xFFFF, "product ID")
    _range(problems, "--hw-ver", hw_ver, 0, 0xFFFF, "hardware version")
    if iterations is not None and not ITERATIONS_MIN <= iterations <= ITERATIONS_MAX:
        problems.add(
            CLI,
            0,
            0,
            "--iteration-count",
            f"{iterations}: must be {ITERATIONS_MIN} to {ITERATIONS_MAX}",
        )
        iterations = None
    if lifetime is not None and lifetime <= 0:
        problems.add(CLI, 0, 0, "--lifetime", f"{lifetime}: must be 1 day or more")
    if size is not None and (size < 0x3000 or size % 0x1000):
        problems.add(CLI, 0, 0, "--size", f"{size:#x}: a multiple of 0x1000, at least 0x3000")
    _length(problems, "--serial-num", args.serial_num, 1, SERIAL_MAX)
    _length(problems, "--vendor-name", args.vendor_name, 1, 32)
    _length(problems, "--product-name", args.product_name, 1, 32)
    _length(problems, "--hw-ver-str", args.hw_ver_str, 1, 64)
    _length(problems, "--part-number", args.part_number, 1, 32)
    _length(problems, "--product-label", args.product_label, 1, 64)
    _length(problems, "--product-url", args.product_url, 1, 256)
    _mfg_date(problems, args.mfg_date)
    rd_id_uid = None
    if args.rd_id_uid is not None:
        try:
            rd_id_uid = bytes.fromhex(args.rd_id_uid)
            if len(rd_id_uid) != 16:
                raise ValueError
        except ValueError:
            problems.add(CLI, 0, 0, "--rd-id-uid", "must be 32 hex digits (128 bits)")
            rd_id_uid = None
    valid_from = _valid_from(problems, args.valid_from)
    fixed_labels = _fixed_labels(problems, args.fixed_labels)
    modes = _supported_modes(problems, args.supported_modes)
    if args.ds_peripheral or (efuse_key_id is not None and efuse_key_id != -1):
        problems.add(
            CLI,
            0,
            0,
            "--ds-peripheral",
            "the station does not burn eFuse keys here: make the DAC key plain, then use "
            "station security for the chip's eFuses",
        )

    extra_keys, extra_rows, extra_lines = _extras(problems, args)
    if args.mcsv is not None and extra_rows is not None and args.csv is not None:
        count = len(extra_rows)
    if count is not None and count < 1:
        problems.add(CLI, 0, 0, "--count", f"{count}: make at least one device")

    salt = verifier = None
    if args.salt is not None or args.verifier is not None:
        if args.salt is None or args.verifier is None:
            problems.add(
                CLI,
                0,
                0,
                "--salt" if args.salt is None else "--verifier",
                "--salt and --verifier go together",
            )
        if args.passcode is None:
            problems.add(CLI, 0, 0, "--salt", "--salt and --verifier need --passcode")
        if args.enable_dynamic_passcode:
            problems.add(
                CLI,
                0,
                0,
                "--salt",
                "--salt and --verifier cannot be used with --enable-dynamic-passcode",
            )
        try:
            salt = base64.b64decode(args.salt or "", validate=True) if args.salt else None
        except binascii.Error:
            problems.add(CLI, 0, 0, "--salt", "is not base64")
        try:
            verifier = (
                base64.b64decode(args.verifier or "", validate=True) if args.verifier else None
            )
        except binascii.Error:
            problems.add(CLI, 0, 0, "--verifier", "is not base64")
        if salt is not None and not 16 <= len(salt) <= 32:
            problems.add(CLI, 0, 0, "--salt", f"is {len(salt)} bytes; the spec wants 16 to 32")
        if (
            salt is not None
            and verifier is not None
            and passcode is not None
            and iterations
            and not verifier_matches(verifier, passcode, salt, iterations)
        ):
            problems.add(
                CLI,
                0,
                0,
                "--verifier",
                "is not the verifier of --passcode with --salt and --iteration-count",
            )

    single = [
        o
        for o, v in (
            ("--discriminator", args.discriminator),
            ("--passcode", args.passcode),
            ("--dac-key", args.dac_key),
            ("--serial-num", args.serial_num),
            ("--rd-id-uid", args.rd_id_uid),
            ("--salt", args.salt),
            ("--verifier", args.verifier),
        )
        if v is not None
    ]
    if single and count is not None and count != 1:
        problems.add(CLI, 0, 0, single[0], f"is for one device; the count is {count}")
    in_sc = args.commissionable_data_in_secure_cert or args.rd_id_uid_in_secure_cert
    if in_sc and not (
        args.dac_in_secure_cert
        and args.commissionable_data_in_secure_cert
        and args.rd_id_uid_in_secure_cert
    ):
        problems.add(
            CLI,
            0,
            0,
            "--commissionable-data-in-secure-cert"
            if args.commissionable_data_in_secure_cert
            else "--rd-id-uid-in-secure-cert",
            "goes with --dac-in-secure-cert, --commissionable-data-in-secure-cert and "
            "--rd-id-uid-in-secure-cert, all three",
        )
    if args.port and count is not None and count != 1:
        problems.add(CLI, 0, 0, "--port", "is for one device; the count is more than 1")

    # attestation
    if (args.dac_key is None) != (args.dac_cert is None):
        problems.add(
            CLI,
            0,
            0,
            "--dac-key" if args.dac_key is None else "--dac-cert",
            "--dac-cert and --dac-key go together",
        )
    if args.dac_key is not None and not args.pai:
        problems.add(CLI, 0, 0, "--dac-cert", "needs --pai with -c (the PAI that signed it)")
    dac_given = args.dac_cert is not None and args.dac_key is not None
    if (args.paa or args.pai) and not dac_given and (args.key is None or args.cert is None):
        problems.add(
            CLI, 0, 0, "--paa" if args.paa else "--pai", "needs -c CERT and -k KEY to sign the DACs"
        )
    if (args.paa or args.pai) and dac_given and args.cert is None:
        problems.add(CLI, 0, 0, "--pai", "needs -c, the PAI certificate")
    if (args.cert or args.key) and not (args.paa or args.pai):
        problems.add(CLI, 0, 0, "-c" if args.cert else "-k", "say what it is: --paa or --pai")
    if args.dac_in_secure_cert and not (args.paa or args.pai):
        problems.add(CLI, 0, 0, "--dac-in-secure-cert", "needs a DAC: --pai or --paa with -c/-k")
    if args.paa_cert and not args.pai:
        problems.add(CLI, 0, 0, "--paa-cert", "only with --pai")

    cert = _cert(problems, "--cert", args.cert) if (args.paa or args.pai) else None
    key = _key(problems, "--key", args.key, args.priv_key_pass) if (args.paa or args.pai) else None
    dac_cert = _cert(problems, "--dac-cert", args.dac_cert)
    dac_key = _key(problems, "--dac-key", args.dac_key, args.priv_key_pass)
    paa_check = _cert(problems, "--paa-cert", args.paa_cert) if args.paa_cert else None
    cd = _read(problems, "--cert-dclrn", args.cert_dclrn)
    if cd is not None and (msg := certs.cd_problem(cd)):
        problems.add(args.cert_dclrn, 0, 0, "--cert-dclrn", msg)

    def cert_problems(path: str, option: str, found: list[str]) -> None:
        for msg in found:
            problems.add(path, 0, 0, option, msg)

    nvb = valid_from or now.replace(microsecond=0)
    nva = nvb + dt.timedelta(days=lifetime or certs.DEFAULT_LIFETIME_DAYS)
    if cert is not None:
        what = "PAA" if args.paa else "PAI"
        cert_problems(
            args.cert, "--cert", certs.paa_problems(cert) if args.paa else certs.pai_problems(cert)
        )
        if msg := certs.not_valid_now(cert, now):
            problems.add(args.cert, 0, 0, "--cert", f"{what} certificate is {msg}")
        if key is not None and not certs.key_matches(cert, key):
            problems.add(
                args.key,
                0,
                0,
                "--key",
                f"is not the private key of the {what} certificate {args.cert}",
            )
        if args.pai and vid is not None and pid is not None:
            cert_problems(args.cert, "--cert", certs.vid_pid_problems(cert, vid, pid))
        if not dac_given and lifetime:
            if msg := certs.covers(cert, nvb, nva):
                problems.add(
                    CLI,
                    0,
                    0,
                    "--lifetime",
                    f"the certificates to make: {msg}; shorten --lifetime or change --valid-from",
                )
            elif nva < now:
                problems.add(
                    CLI,
                    0,
                    0,
                    "--valid-from",
                    f"the certificates to make would have expired on {nva:%Y-%m-%d}",
                )
        if paa_check is not None:
            cert_problems(args.paa_cert, "--paa-cert", certs.paa_problems(paa_check))
            cert_problems(args.cert, "--cert", certs.chain_problems(cert, paa_check, "PAI"))
    if dac_cert is not None:
        cert_problems(args.dac_cert, "--dac-cert", certs.dac_problems(dac_cert))
        if msg := certs.not_valid_now(dac_cert, now):
            problems.add(args.dac_cert, 0, 0, "--dac-cert", f"DAC is {msg}")
        if dac_key is not None and not certs.key_matches(dac_cert, dac_key):
            problems.add(
                args.dac_key,
                0,
                0,
                "--dac-key",
                f"is not the private key of the DAC {args.dac_cert}",
            )
        if cert is not None and args.pai:
            cert_problems(args.dac_cert, "--dac-cert", certs.chain_problems(dac_cert, cert, "DAC"))
        if vid is not None and pid is not None:
            cert_problems(args.dac_cert, "--dac-cert", certs.vid_pid_problems(dac_cert, vid, pid))

    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        problems.add(str(outdir), 0, 0, "--outdir", "exists and is not a folder")
    problems.raise_if_any()
    assert count is not None and size is not None and vid is not None and pid is not None
    assert flow is not None and discovery is not None and iterations is not None and lifetime

    pai_cert, pai_key = cert, key
    paa_pai = None
    if args.paa and cert is not None and key is not None:
        name = f"{args.cn_prefix} PAI 00" if args.cn_prefix else "MATTER TEST PAI"
        pai_cert, pai_key = certs.make_certificate(
            certs.Issuer(cert, key), certs.matter_subject(name, vid, pid), nvb, nva, is_pai=True
        )
        paa_pai = (pai_cert, pai_key)
    issuer = (
        certs.Issuer(pai_cert, pai_key) if pai_cert is not None and pai_key is not None else None
    )
    dac = None
    dac_uuid = None
    if dac_given and dac_cert is not None and dac_key is not None:
        from station.matter.factory import sec1_der

        dac = (certs.der(dac_cert), sec1_der(dac_key))
        cn = certs.common_name_of(dac_cert.subject)
        try:
            if cn is not None:
                uuidlib.UUID(cn)
                dac_uuid = cn
        except ValueError:
            pass
    config = MatterConfig(
        vendor_id=vid,
        product_id=pid,
        vendor_name=args.vendor_name,
        product_name=args.product_name,
        hw_ver=hw_ver,
        hw_ver_str=args.hw_ver_str,
        mfg_date=args.mfg_date,
        part_number=args.part_number,
        product_finish=args.product_finish,
        product_color=args.product_color,
        product_label=args.product_label,
        product_url=args.product_url,
        calendar_types=tuple(args.calendar_types) if args.calendar_types else None,
        locales=tuple(args.locales) if args.locales else None,
        fixed_labels=fixed_labels,
        supported_modes=modes,
        rotating_id=args.enable_rotating_device_id,
        iteration_count=iterations,
        flow=CommissioningFlow(flow),
        discovery=discovery,
        dynamic_passcode=args.enable_dynamic_passcode,
        pai=None if dac_given else issuer,
        pai_der=certs.der(pai_cert) if pai_cert is not None else None,
        cd=cd,
        cd_path=os.path.relpath(args.cert_dclrn) if args.cert_dclrn else None,
        # the devices' window is the one checked here (a PAI made from the PAA has it too)
        not_before=nvb,
        lifetime_days=lifetime,
        dac_in_secure_cert=args.dac_in_secure_cert,
        commissionable_in_secure_cert=args.commissionable_data_in_secure_cert,
        rd_id_uid_in_secure_cert=args.rd_id_uid_in_secure_cert,
        mqtt_host=args.mqtt_host,
        extra_keys=extra_keys,
    )
    return Plan(
        config=config,
        count=count,
        size=size,
        outdir=outdir,
        generate_bin=args.generate_bin,
        encrypt=args.encrypt,
        secure_cert=config.secure_cert and not args.no_secure_cert_bin and config.attestation,
        passcode=passcode,
        discriminator=discriminator,
        salt=salt,
        verifier=verifier,
        serial_num=args.serial_num,
        rd_id_uid=rd_id_uid,
        dac=dac,
        dac_uuid=dac_uuid,
        paa_mode=args.paa,
        paa_pai=paa_pai,
        extra_rows=tuple(extra_rows),
        extra_lines=tuple(extra_lines),
        mcsv=args.mcsv,
    )
