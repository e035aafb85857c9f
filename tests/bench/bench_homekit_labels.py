"""HomeKit setup data and label rendering per unit, against the tools they replace.

Run by hand: ``python tests/bench/bench_homekit_labels.py``. Prints figures, asserts nothing.
Compares our SRP verifier (pure Python ``pow``) with the ``srp`` package that factory_nvs_gen
uses (OpenSSL through ctypes), and the label renderers with each other.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def timed(name: str, n: int, fn: Callable[[], object]) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    per = (time.perf_counter() - start) / n
    print(f"{name:<52} {per * 1000:8.2f} ms/unit  ({n} runs)")
    return per


def main() -> None:
    import srp

    from station.homekit import generate_setup_code, setup_payload, srp_salt_verifier
    from station.homekit.srp import RFC5054_3072

    code = generate_setup_code()
    n_hex = format(RFC5054_3072.N, "X").encode()
    ours = timed("station.homekit.srp_salt_verifier", 200, lambda: srp_salt_verifier(code))
    theirs = timed(
        "srp.create_salted_verification_key (factory_nvs_gen)",
        200,
        lambda: srp.create_salted_verification_key(
            "Pair-Setup", code, srp.SHA512, srp.NG_CUSTOM, n_hex, b"5", salt_len=16
        ),
    )
    print(f"  ratio ours/srp: {ours / theirs:.2f}")
    timed("setup_payload", 2000, lambda: setup_payload(code, "7OSX", 7, wac=True))

    from PySide6.QtGui import QGuiApplication

    from station.gui.label_render import render_image
    from station.labels import render_png, template_from_dict, to_zpl

    app = QGuiApplication([])  # noqa: F841 - fonts need it
    template = template_from_dict(
        {
            "width_mm": 50,
            "height_mm": 25,
            "lines": ["SN {serial_no}", "MAC {mac}", "{setup_code}"],
            "qr": "{homekit_payload}",
            "code128": "{serial_no}",
        }
    )
    fields = {
        "serial_no": "SN26110001",
        "mac": "24:0A:C4:12:34:56",
        "setup_code": code,
        "homekit_payload": setup_payload(code, "7OSX", 7, wac=True),
    }
    timed("render_image (preview, 300 dpi)", 100, lambda: render_image(template, fields))
    timed("render_png (300 dpi)", 100, lambda: render_png(template, fields))
    timed("to_zpl", 500, lambda: to_zpl(template, fields))


if __name__ == "__main__":
    main()
