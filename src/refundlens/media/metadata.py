"""Metadata readers over raw file bytes: PNG text chunks anywhere in the file, XMP packets,
EXIF UserComment. Bounded: chunk counts and decompressed sizes are capped, so a hostile file
cannot make a reader allocate without limit.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from xml.etree import ElementTree

__all__ = ["TextChunk", "decode_user_comment", "parse_xmp", "png_text_chunks"]

MAX_CHUNKS = 4096
MAX_TEXT_BYTES = 1 << 20  # per chunk, after decompression
MAX_TOTAL_TEXT_BYTES = 4 << 20
"""All of a file's text chunks together, after decompression: 4096 chunks of 1 MiB each would
be 4 GiB from a 4 MB file (each zTXt of 1 KB inflates to 1 MiB). Reading stops there."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclasses.dataclass(frozen=True, slots=True)
class TextChunk:
    """One PNG tEXt/zTXt/iTXt chunk: its type, key, text, and whether it follows the image data."""

    kind: str
    key: str
    text: str
    after_image_data: bool


def _inflate(data: bytes, limit: int = MAX_TEXT_BYTES) -> bytes | None:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, max(1, limit))
    except zlib.error:
        return None
    return out if not inflater.unconsumed_tail else None  # over the cap: refuse, do not truncate


def png_text_chunks(data: bytes) -> tuple[TextChunk, ...]:
    """Every text chunk of a PNG file, including those after IDAT (which Pillow reads only when
    the pixels are loaded). Malformed chunks are skipped; returns () for a non-PNG."""
    if not data.startswith(_PNG_SIGNATURE):
        return ()
    out: list[TextChunk] = []
    pos = len(_PNG_SIGNATURE)
    seen_idat = False
    budget = MAX_TOTAL_TEXT_BYTES
    for _ in range(MAX_CHUNKS):
        if pos + 8 > len(data):
            break
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if len(body) < length:
            break
        if kind == b"IDAT":
            seen_idat = True
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            limit = min(budget, MAX_TEXT_BYTES)
            chunk = _text_chunk(kind.decode("ascii"), body, seen_idat, limit)
            if chunk is not None:
                out.append(chunk)
                budget -= len(chunk.text.encode("utf-8", "surrogatepass"))
            elif kind != b"tEXt":
                # A compressed chunk refused over its cap was inflated up to it first: the work
                # counts against the budget, or 4096 of them cost seconds a photo.
                budget -= limit
            if budget <= 0:
                break
        elif kind == b"IEND":
            seen_idat = True
    return tuple(out)


def _text_chunk(
    kind: str, body: bytes, after: bool, limit: int = MAX_TEXT_BYTES
) -> TextChunk | None:
    key, sep, rest = body.partition(b"\x00")
    if not sep or not key:
        return None
    name = key.decode("latin-1", "replace")
    if kind == "tEXt":
        return TextChunk(kind, name, rest.decode("latin-1", "replace"), after)
    if kind == "zTXt":
        text = _inflate(rest[1:], limit) if rest[:1] == b"\x00" else None
        return (
            TextChunk(kind, name, text.decode("latin-1", "replace"), after)
            if text is not None
            else None
        )
    # iTXt: compression flag, method, language\0, translated keyword\0, text
    if len(rest) < 2:
        return None
    compressed, _method, tail = rest[0], rest[1], rest[2:]
    _lang, _, tail = tail.partition(b"\x00")
    _translated, _, text_bytes = tail.partition(b"\x00")
    if compressed:
        inflated = _inflate(text_bytes, limit)
        if inflated is None:
            return None
        text_bytes = inflated
    return TextChunk(kind, name, text_bytes.decode("utf-8", "replace"), after)


def parse_xmp(packet: bytes | str) -> dict[str, list[str]]:
    """Flatten an XMP packet to ``{"{namespace-uri}local": [values]}`` from attributes, simple
    elements and rdf:li items. Returns {} for a packet that is not well-formed XML."""
    if isinstance(packet, bytes):
        packet = packet.decode("utf-8", "replace")
    start = packet.find("<x:xmpmeta")
    if start < 0:
        start = packet.find("<rdf:RDF")
    end_tag = "</x:xmpmeta>" if "<x:xmpmeta" in packet else "</rdf:RDF>"
    end = packet.rfind(end_tag)
    if start < 0 or end < 0:
        return {}
    text = packet[start : end + len(end_tag)]
    if len(text) > MAX_TEXT_BYTES:
        return {}
    try:
        root = ElementTree.fromstring(text)  # expat >= 2.4 refuses entity-expansion bombs
    except ElementTree.ParseError:
        return {}
    rdf = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
    out: dict[str, list[str]] = {}
    for element in root.iter():
        if element.tag == rdf + "Description":
            for name, value in element.attrib.items():
                if not name.startswith(rdf):
                    out.setdefault(name, []).append(value)
            for child in element:
                # A property's items are its container's (rdf:Bag, Seq or Alt) children, or its
                # own: looked for there only. Every li below it once took a walk of the whole
                # subtree per property, and nested Descriptions made that quadratic (a 15 KB
                # PNG cost 9 s: an attacker's probe); a nested Description is read on its own.
                items = child.findall(f"./{rdf}li") + child.findall(f"./*/{rdf}li")
                values = [li.text.strip() for li in items if li.text and li.text.strip()]
                if not values and child.text and child.text.strip():
                    values = [child.text.strip()]
                resource = child.attrib.get(rdf + "resource")
                if resource:
                    values.append(resource)
                if values:
                    out.setdefault(child.tag, []).extend(values)
    return out


def decode_user_comment(value: bytes | str | None) -> str | None:
    """EXIF UserComment: an 8-byte character-code prefix (ASCII, UNICODE, JIS) then the text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip("\x00 ").strip() or None
    head, body = value[:8], value[8:]
    if head.startswith(b"UNICODE"):
        # UTF-16 of either byte order; the writer's byte order is not recorded
        big = body.decode("utf-16-be", "replace")
        little = body.decode("utf-16-le", "replace")
        text = (
            big
            if big.isprintable()
            or sum(c.isascii() for c in big) >= sum(c.isascii() for c in little)
            else little
        )
    elif head.startswith(b"ASCII") or head == b"\x00" * 8:
        text = body.decode("latin-1", "replace")
    else:
        text = value.decode("utf-8", "replace")
    text = text.strip("\x00 ").strip()
    return text or None
