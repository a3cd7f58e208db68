"""A hand-written ICC v2 RGB profile with wider-than-sRGB primaries (Display P3 adapted to D50, gamma 2.2),
for tests of colour management: no such profile ships with Pillow, and none can be downloaded."""

from __future__ import annotations

import struct


def s15(x):
    return struct.pack(">i", int(round(x * 65536)))


def xyz(x, y, z):
    return b"XYZ " + b"\0" * 4 + s15(x) + s15(y) + s15(z)


def curv(g):
    return b"curv" + b"\0" * 4 + struct.pack(">I", 1) + struct.pack(">H", int(g * 256)) + b"\0\0"


def desc(t):
    a = t.encode() + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(a)) + a + b"\0" * (4 + 4 + 2 + 1 + 67)


def wide_gamut_icc() -> bytes:
    """The profile's bytes (header, tag table, desc, wtpt, XYZ primaries and gamma curves)."""
    tags = [
        (b"desc", desc("wide test")),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.5151, 0.2412, -0.0011)),
        (b"gXYZ", xyz(0.2920, 0.6922, 0.0419)),
        (b"bXYZ", xyz(0.1571, 0.0666, 0.7841)),
        (b"rTRC", curv(2.2)),
        (b"gTRC", curv(2.2)),
        (b"bTRC", curv(2.2)),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table = b""
    body = b""
    for sig, data in tags:
        while len(data) % 4:
            data += b"\0"
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + b"\0" * 48
    )
    assert len(header) == 128, len(header)
    return header + struct.pack(">I", len(tags)) + table + body
