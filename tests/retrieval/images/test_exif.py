"""Titles and keywords read from XMP (dc:title, dc:subject) and IPTC IIM (ObjectName, Keywords)."""

from __future__ import annotations

import io
import struct

from PIL import Image

from retrieval.images.decode import decode_bytes


def _iptc_jpeg(records: list[tuple[int, bytes]]) -> bytes:
    """A JPEG with an IPTC IIM block (record 2 datasets) in its Photoshop APP13 segment."""
    iim = b"".join(b"\x1c\x02" + bytes([tag]) + struct.pack(">H", len(data)) + data for tag, data in records)
    iim += b"\x00" * (len(iim) % 2)
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iim)) + iim
    app13 = b"Photoshop 3.0\x00" + resource
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (30, 120, 200)).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(app13) + 2) + app13 + jpeg[2:]


def test_iptc_object_name_and_keywords() -> None:
    data = _iptc_jpeg([(5, b"Q3 plan"), (25, b"whiteboard"), (25, b"office"), (25, b"whiteboard")])
    meta = decode_bytes(data).meta
    assert (meta.title, meta.keywords) == ("Q3 plan", ("whiteboard", "office"))
    assert meta.tags() == ["Q3 plan", "whiteboard", "office"]


def test_xmp_title_and_subject_come_first_and_bad_iptc_gives_none() -> None:
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description><dc:title><rdf:Alt>'
        b'<rdf:li xml:lang="x-default">Station &amp; sign</rdf:li></rdf:Alt></dc:title><dc:subject><rdf:Bag>'
        b"<rdf:li>travel</rdf:li><rdf:li>Japan</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12)).save(buffer, "JPEG", xmp=xmp)
    meta = decode_bytes(buffer.getvalue()).meta
    assert (meta.title, meta.keywords) == ("Station & sign", ("travel", "Japan"))
    broken = _iptc_jpeg([(25, b"ok")])
    broken = broken.replace(b"\x1c\x02\x19\x00\x02ok", b"\x1c\x02\x19\xff\xffok")  # a length past the end
    assert decode_bytes(broken).meta.keywords == ()  # the pixels still decode
    plain = io.BytesIO()
    Image.new("RGB", (8, 8)).save(plain, "PNG")
    assert (decode_bytes(plain.getvalue()).meta.title, decode_bytes(plain.getvalue()).meta.keywords) == (None, ())
