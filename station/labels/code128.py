"""Code 128 (ISO/IEC 15417) encoder: text to bar/space module widths, no Qt.

Printable ASCII only (what serial numbers and MACs are made of). Runs of digits are packed two
per symbol in code set C, the rest goes in code set B, so long serial numbers stay short.
"""

from __future__ import annotations

# Bar/space widths of symbol values 0..106 (103..105 start A/B/C, 106 stop incl. final bar).
_PATTERNS = (
    "212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 221312 231212 112232 "
    "122132 122231 113222 123122 123221 223211 221132 221231 213212 223112 312131 311222 321122 "
    "321221 312212 322112 322211 212123 212321 232121 111323 131123 131321 112313 132113 132311 "
    "211313 231113 231311 112133 112331 132131 113123 113321 133121 313121 211331 231131 213113 "
    "213311 213131 311123 311321 331121 312113 312311 332111 314111 221411 431111 111224 111422 "
    "121124 121421 141122 141221 112214 112412 122114 122411 142112 142211 241211 221114 413111 "
    "241112 134111 111242 121142 121241 114212 124112 124211 411212 421112 421211 212141 214121 "
    "412121 111143 111341 131141 114113 114311 411113 411311 113141 114131 311141 411131 211412 "
    "211214 211232 2331112"
).split()

START_B, START_C, CODE_B, CODE_C, STOP = 104, 105, 100, 99, 106
QUIET_ZONE = 10  # modules of white on each side


def unsupported(text: str) -> str | None:
    """Why ``text`` cannot be a Code 128 barcode here, or None."""
    if not text:
        return "barcode text is empty"
    bad = sorted({c for c in text if not 32 <= ord(c) <= 126})
    if bad:
        return f"Code 128 takes printable ASCII only, not {''.join(bad)!r}"
    return None


def _digit_run(text: str, i: int) -> int:
    n = 0
    while i + n < len(text) and text[i + n].isdigit():
        n += 1
    return n


def symbols(text: str) -> list[int]:
    """Symbol values: start, data (sets B/C), checksum, stop. ValueError if not encodable."""
    error = unsupported(text)
    if error:
        raise ValueError(error)
    out: list[int] = []
    i = 0
    run = _digit_run(text, 0)
    mode = "C" if run >= 4 or (run == len(text) and run % 2 == 0) else "B"
    out.append(START_C if mode == "C" else START_B)
    while i < len(text):
        run = _digit_run(text, i)
        if mode == "C":
            if run >= 2:
                out.append(int(text[i : i + 2]))
                i += 2
                continue
            mode = "B"
            out.append(CODE_B)
        # code set B; switch to C for a long even stretch of digits
        at_end = i + run == len(text)
        if run >= 6 or (run >= 4 and at_end):
            if run % 2:
                out.append(ord(text[i]) - 32)
                i += 1
            mode = "C"
            out.append(CODE_C)
            continue
        out.append(ord(text[i]) - 32)
        i += 1
    checksum = (out[0] + sum(pos * v for pos, v in enumerate(out[1:], start=1))) % 103
    return [*out, checksum, STOP]


def modules(text: str) -> list[bool]:
    """The barcode as a row of modules (True = bar), without the quiet zones."""
    row: list[bool] = []
    for value in symbols(text):
        bar = True
        for width in _PATTERNS[value]:
            row.extend([bar] * int(width))
            bar = not bar
    return row
