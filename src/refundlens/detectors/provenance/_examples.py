"""Files with known provenance, written here (nothing downloaded): the contract test runs them,
and tests and the benchmark reuse the writers."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from ...media import Media, media_from_bytes
from ..base import Context, Example

LABEL = {
    "AIGC": {
        "Label": "1",
        "ContentProducer": "001191320114777023610000",
        "ProduceID": "20250917-abc123",
        "ReservedCode1": "",
        "ContentPropagator": "91110000802100433B",
        "PropagateID": "p-42",
        "ReservedCode2": "",
    }
}


def label_json(label: str = "1", **changes: str) -> str:
    body = dict(LABEL["AIGC"], Label=label, **changes)
    return json.dumps({"AIGC": body}, ensure_ascii=False)


def xmp_packet(properties: dict[str, str]) -> bytes:
    """An XMP packet with TC260:AIGC and/or Iptc4xmpExt:DigitalSourceType attributes."""
    attrs = " ".join(
        f'{k}="{v.replace("&", "&amp;").replace(chr(34), "&quot;")}"' for k, v in properties.items()
    )
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" {attrs}/>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def picture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (12, 16, 3), np.uint8)
    return np.asarray(Image.fromarray(small).resize((160, 120), Image.Resampling.BICUBIC))


def jpeg_with_xmp(xmp: bytes, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    kwargs = {"exif": exif} if exif else {}
    Image.fromarray(picture()).save(buf, "JPEG", quality=90, xmp=xmp, **kwargs)
    return buf.getvalue()


def webp_with_xmp(xmp: bytes) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(picture()).save(buf, "WEBP", xmp=xmp)
    return buf.getvalue()


def png_with_text(chunks: dict[str, str], *, after_idat: bool = False, kind: str = "tEXt") -> bytes:
    """A PNG with text chunks, placed before the image data or (as some tools do) after it."""
    buf = io.BytesIO()
    if not after_idat:
        info = PngImagePlugin.PngInfo()
        for key, value in chunks.items():
            if kind == "iTXt":
                info.add_itxt(key, value)
            elif kind == "zTXt":
                info.add_text(key, value, zip=True)
            else:
                info.add_text(key, value)
        Image.fromarray(picture()).save(buf, "PNG", pnginfo=info)
        return buf.getvalue()
    Image.fromarray(picture()).save(buf, "PNG")
    data = buf.getvalue()
    iend = data.rindex(b"IEND") - 4
    extra = b""
    for key, value in chunks.items():
        body = key.encode("latin-1") + b"\x00"
        if kind == "zTXt":
            body += b"\x00" + zlib.compress(value.encode("latin-1"))
            tag = b"zTXt"
        elif kind == "iTXt":
            body += b"\x00\x00\x00\x00" + value.encode("utf-8")
            tag = b"iTXt"
        else:
            body += value.encode("latin-1")
            tag = b"tEXt"
        extra += (
            struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
        )
    return data[:iend] + extra + data[iend:]


def png_with_xmp(xmp: bytes) -> bytes:
    return png_with_text({"XML:com.adobe.xmp": xmp.decode("utf-8")}, kind="iTXt")


def camera_jpeg() -> bytes:
    """A JPEG with the EXIF of a camera original (maker, model, capture time)."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 80D"
    exif.get_ifd(0x8769)[0x9003] = "2025:09:17 10:00:00"
    buf = io.BytesIO()
    Image.fromarray(picture(3)).save(buf, "JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


COMFY_WORKFLOW = {
    "last_node_id": 3,
    "nodes": [
        {"id": 1, "type": "LoadImage"},
        {"id": 2, "type": "FluxKontextImageScale"},
        {"id": 3, "type": "SaveAnimatedWEBP"},
    ],
}
COMFY_PROMPT = {"2": {"class_type": "FluxKontextImageScale", "inputs": {"image": ["1", 0]}}}


def comfyui_webp(*, frames: int = 1, seed: int = 0) -> bytes:
    """A WebP as ComfyUI's SaveAnimatedWEBP writes it (also for one frame): the workflow in EXIF
    Make (0x010F) as ``workflow:{...}`` and the prompt in Model (0x0110) as ``prompt:{...}``."""
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + json.dumps(COMFY_PROMPT)
    exif[0x010F] = "workflow:" + json.dumps(COMFY_WORKFLOW)
    images = [Image.fromarray(picture(seed + i)) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(
        buf, "WEBP", exif=exif, save_all=frames > 1, append_images=images[1:], duration=100
    )
    return buf.getvalue()


def jpeg_with_exif_text(fields: dict[int, str], *, seed: int = 4) -> bytes:
    """A JPEG whose EXIF carries text ``fields`` (tag -> text): ImageDescription (0x010E) in IFD0,
    UserComment (0x9286, ASCII prefix) in the Exif IFD, any other tag in IFD0."""
    exif = Image.Exif()
    for tag, text in fields.items():
        if tag == 0x9286:
            exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + text.encode("utf-8")
        else:
            exif[tag] = text
    buf = io.BytesIO()
    Image.fromarray(picture(seed)).save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


DREAMINA_INFO = json.dumps({"aigc_info": {"source_info": "dreamina"}})


def dreamina_jpeg(field: int = 0x9286) -> bytes:
    """Jimeng/Dreamina's own EXIF block, ``{"aigc_info": {"source_info": "dreamina"}}``, in
    UserComment (default) or a field of its own."""
    return jpeg_with_exif_text({field: DREAMINA_INFO})


def label_in_image_description(label: str = "1", **changes: str) -> bytes:
    """The GB 45438 JSON label in EXIF ImageDescription, as cloud generation APIs write it."""
    return jpeg_with_exif_text({0x010E: label_json(label, **changes)})


def draw_mark(
    base: Image.Image,
    height: int,
    corner: str,
    opacity: float,
    font_path: str | Path,
    text: str = "AI生成",
) -> bytes:
    """``base`` with ``text`` drawn ``height`` px tall in ``corner`` at ``opacity``, as services
    draw their visible labels (white, a thin dark outline, half its height from the edges), saved
    as JPEG q85. ``font_path``: a CJK font (fonts-wqy-microhei)."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), height)
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    margin = max(4, height // 2)
    x = base.width - (right - left) - margin if "right" in corner else margin
    y = base.height - (bottom - top) - margin - top if "bottom" in corner else margin - top
    alpha = round(255 * opacity)
    draw.text(
        (x, y),
        text,
        font=font,
        fill=(255, 255, 255, alpha),
        stroke_width=max(1, height // 14),
        stroke_fill=(0, 0, 0, round(alpha * 0.6)),
    )
    out = io.BytesIO()
    Image.alpha_composite(base.convert("RGBA"), layer).convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


def _case(data: bytes, name: str) -> tuple[Media, Context]:
    return media_from_bytes(data, name), Context()


def _c2pa_examples() -> list[Example]:
    from ._c2pa_examples import sign_jpeg, sign_jpeg_remote

    def tampered() -> tuple[Media, Context]:
        signed = bytearray(sign_jpeg(camera_jpeg(), "digitalCapture"))
        signed[-200] ^= 0xFF  # a byte of the picture changed after signing
        return _case(bytes(signed), "tampered.jpg")

    return [
        Example(
            "C2PA: trainedAlgorithmicMedia, signed by an untrusted CA",
            lambda: _case(sign_jpeg(camera_jpeg()), "ai.jpg"),
            frozenset({"provenance.c2pa_ai"}),
        ),
        Example(
            "C2PA: algorithmicMedia",
            lambda: _case(sign_jpeg(camera_jpeg(), "algorithmicMedia"), "algo.jpg"),
            frozenset({"provenance.c2pa_algorithmic"}),
        ),
        Example(
            "C2PA: a camera capture declared, nothing of AI",
            lambda: _case(sign_jpeg(camera_jpeg(), "digitalCapture"), "camera.jpg"),
            frozenset({"provenance.c2pa_manifest"}),
        ),
        Example(
            "C2PA: the picture changed after signing",
            tampered,
            frozenset({"provenance.c2pa_invalid"}),
        ),
        Example(
            "C2PA: a manifest kept remotely, not fetched",
            lambda: _case(sign_jpeg_remote(camera_jpeg()), "remote.jpg"),
            frozenset({"provenance.c2pa_remote"}),
        ),
    ]


def provenance_examples() -> list[Example]:
    def xmp_label() -> tuple[Media, Context]:
        return _case(jpeg_with_xmp(xmp_packet({"TC260:AIGC": label_json()})), "label.jpg")

    def png_after_idat() -> tuple[Media, Context]:
        return _case(png_with_text({"AIGC": label_json("2")}, after_idat=True), "label.png")

    def malformed() -> tuple[Media, Context]:
        return _case(png_with_text({"AIGC": '{"AIGC": {"Label": "7"}}'}), "bad.png")

    def iptc() -> tuple[Media, Context]:
        xmp = xmp_packet(
            {
                "Iptc4xmpExt:DigitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
            }
        )
        return _case(webp_with_xmp(xmp), "ai.webp")

    def a1111() -> tuple[Media, Context]:
        params = "photo of a cracked vase\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7"
        return _case(png_with_text({"parameters": params}), "sd.png")

    def camera() -> tuple[Media, Context]:
        return _case(camera_jpeg(), "camera.jpg")

    def watermarked() -> tuple[Media, Context]:
        from importlib import resources

        from ._watermark_examples import embed
        from .watermark import KNOWN_MARKS

        # A real photo (the bundled CC0 cup): the mark needs natural texture to vote on.
        sample = (resources.files("refundlens") / "samples" / "claim_unrelated.jpg").read_bytes()
        base = np.asarray(Image.open(io.BytesIO(sample)).convert("RGB"))
        out = io.BytesIO()
        Image.fromarray(embed(base, KNOWN_MARKS[0].bits)).save(out, "PNG")
        return _case(out.getvalue(), "sd.png")

    def meitu() -> tuple[Media, Context]:
        exif = Image.Exif()
        exif[0x010F], exif[0x0110], exif[0x0131] = "Apple", "iPhone 13", "MeituXiuXiu 10.2"
        out = io.BytesIO()
        Image.fromarray(picture(5)).save(out, "JPEG", quality=92, exif=exif.tobytes())
        return _case(out.getvalue(), "meitu.jpg")

    return [
        Example("GB 45438 label in JPEG XMP", xmp_label, frozenset({"provenance.aigc_label"})),
        Example(
            "GB 45438 label in EXIF ImageDescription, producer named 'doubao'",
            lambda: _case(label_in_image_description(ContentProducer="doubao"), "desc.jpg"),
            frozenset({"provenance.aigc_label"}),
        ),
        Example(
            "ComfyUI WebP: workflow in EXIF Make, prompt in Model",
            lambda: _case(comfyui_webp(), "comfy.webp"),
            frozenset({"provenance.generator_metadata"}),
        ),
        Example(
            "Jimeng/Dreamina aigc_info in EXIF UserComment",
            lambda: _case(dreamina_jpeg(), "dreamina.jpg"),
            frozenset({"provenance.generator_metadata"}),
        ),
        Example(
            "Label 2 in a PNG tEXt chunk after IDAT",
            png_after_idat,
            frozenset({"provenance.aigc_label_possible"}),
        ),
        Example("malformed label", malformed, frozenset({"provenance.aigc_label_malformed"})),
        Example(
            "IPTC trainedAlgorithmicMedia in WebP XMP",
            iptc,
            frozenset({"provenance.iptc_ai_source"}),
        ),
        Example("AUTOMATIC1111 parameters", a1111, frozenset({"provenance.generator_metadata"})),
        Example("camera original", camera, frozenset({"provenance.none_found"})),
        Example(
            "Stable Diffusion's invisible watermark in a PNG",
            watermarked,
            frozenset({"provenance.invisible_watermark"}),
        ),
        Example("saved by Meitu (AI features)", meitu, frozenset({"provenance.ai_editor"})),
        *_c2pa_examples(),
    ]
