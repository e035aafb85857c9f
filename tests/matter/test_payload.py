"""Passcodes, discriminators and the onboarding codes (QR ``MT:`` and the manual code)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.matter.payload import (
    INVALID_PASSCODES,
    CommissioningFlow,
    SetupPayload,
    base38_decode,
    base38_encode,
    format_manual_code,
    generate_discriminator,
    generate_passcode,
    parse_manual_code,
    parse_qr_code,
    passcode_problem,
    verhoeff_check_digit,
    verhoeff_valid,
)

# The CHIP SDK's documented test device: passcode 20202021, discriminator 3840, VID 0xFFF1,
# PID 0x8000, BLE, standard flow.
CHIP_TEST = SetupPayload(3840, 20202021, 0xFFF1, 0x8000)


def test_chip_test_device_codes() -> None:
    assert CHIP_TEST.qr_code() == "MT:Y.K9042C00KA0648G00"
    assert CHIP_TEST.manual_code() == "34970112332"
    assert format_manual_code(CHIP_TEST.manual_code()) == "3497-011-2332"


def test_codes_of_the_oracle_run() -> None:
    """What esp-matter-mfg-tool 1.0.29 printed for VID 0xFFF2, PID 0x8001 (same device)."""
    payload = SetupPayload(3840, 20202021, 0xFFF2, 0x8001)
    assert payload.qr_code() == "MT:634J042C00KA0648G00"
    assert payload.manual_code() == "34970112332"


def test_long_manual_code_carries_vid_pid() -> None:
    payload = SetupPayload(3840, 20202021, 0xFFF1, 0x8000, CommissioningFlow.USER_INTENT)
    code = payload.manual_code()
    assert len(code) == 21 and code[10:20] == "6552132768"
    parsed = parse_manual_code(format_manual_code(code))
    assert (parsed.vendor_id, parsed.product_id) == (0xFFF1, 0x8000)


def test_forbidden_passcodes_are_refused() -> None:
    for passcode in INVALID_PASSCODES:
        assert passcode_problem(passcode) is not None
    assert passcode_problem(100_000_000) is not None  # above 99999998
    assert passcode_problem(99999998) is None
    assert passcode_problem(1) is None


def test_generated_passcodes_are_valid() -> None:
    for _ in range(2000):
        assert passcode_problem(generate_passcode()) is None
        assert 0 <= generate_discriminator() <= 0xFFF


def test_generator_skips_forbidden_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the CSPRNG lands on 12345678, a forbidden passcode never comes out."""
    draws = iter([12345678 - 1, 87654321 - 1, 5])
    monkeypatch.setattr("station.matter.payload.secrets.randbelow", lambda _n: next(draws))
    assert generate_passcode() == 6


@given(
    st.integers(0, 0xFFF),
    st.integers(1, 99999998),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.sampled_from(list(CommissioningFlow)),
    st.sampled_from([2, 4, 6, 8, 16, 32, 0x3E]),
)
def test_codes_decode_back(
    disc: int, pin: int, vid: int, pid: int, flow: CommissioningFlow, dm: int
) -> None:
    payload = SetupPayload(disc, pin, vid, pid, flow, dm)
    qr = payload.qr_code()
    assert len(qr) == 22 and parse_qr_code(qr) == payload
    manual = parse_manual_code(payload.manual_code())
    assert manual.passcode == pin and manual.short_discriminator == disc >> 8
    if flow != CommissioningFlow.STANDARD:
        assert (manual.vendor_id, manual.product_id) == (vid, pid)


@given(st.binary(max_size=40))
def test_base38_round_trip(data: bytes) -> None:
    assert base38_decode(base38_encode(data)) == data


def test_verhoeff_catches_single_digit_and_swap_errors() -> None:
    code = CHIP_TEST.manual_code()
    assert verhoeff_valid(code)
    for i in range(len(code)):
        for d in "0123456789":
            if d != code[i]:
                assert not verhoeff_valid(code[:i] + d + code[i + 1 :])
    for i in range(len(code) - 1):
        if code[i] != code[i + 1]:
            assert not verhoeff_valid(code[:i] + code[i + 1] + code[i] + code[i + 2 :])
    assert verhoeff_check_digit("236") == "3"  # the textbook example


def test_bad_codes_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_qr_code("XX:Y.K9042C00KA0648G00")
    with pytest.raises(ValueError):
        parse_manual_code("34970112333")  # wrong check digit
    with pytest.raises(ValueError):
        parse_manual_code("3497011233")


def test_repr_hides_the_passcode() -> None:
    assert "20202021" not in repr(CHIP_TEST)
