"""Logo and favicon uploads: only raster images, bounded in bytes and pixels, decoded and re-encoded as PNG so
nothing but pixels survives (no scripts, no metadata, no polyglot files)."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from andon.platform.http.errors import UnsupportedMediaTypeError, ValidationFailedError

MAX_LOGO_BYTES = 512 * 1024
MAX_SIDE = 1024
ACCEPTED = {"PNG", "JPEG", "WEBP", "GIF"}


FAVICON_SIDE = 64


def _error(field: str, message: str) -> ValidationFailedError:
    return ValidationFailedError(message, extra={"errors": [{"field": field, "message": message}]})


def sanitise_logo(data: bytes) -> bytes:
    return sanitise_image(data, field="logo", side=MAX_SIDE)


def sanitise_favicon(data: bytes) -> bytes:
    return sanitise_image(data, field="favicon", side=FAVICON_SIDE)


def sanitise_image(data: bytes, *, field: str, side: int) -> bytes:
    """Pixels only, at most ``side`` pixels a side, as PNG; refusals name ``field``."""
    if not data:
        raise _error(field, "the file is empty")
    if len(data) > MAX_LOGO_BYTES:
        raise _error(field, f"the {field} is {len(data) // 1024} KB; the limit is {MAX_LOGO_BYTES // 1024} KB")
    head = data[:512].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype")) or b"<svg" in head:
        raise UnsupportedMediaTypeError("SVG images can carry scripts and are not accepted; upload a PNG, JPEG or WebP")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind = probe.format
            probe.verify()
        if kind not in ACCEPTED:
            raise UnsupportedMediaTypeError(f"{kind} images are not accepted; upload a PNG, JPEG or WebP")
        with Image.open(io.BytesIO(data)) as image:
            if max(image.size) > 4 * MAX_SIDE:
                raise _error(
                    field, f"the {field} is {image.width}x{image.height} pixels; keep it under {MAX_SIDE} pixels a side"
                )
            image.thumbnail((side, side))
            clean = image.convert("RGBA")
            out = io.BytesIO()
            clean.save(out, format="PNG", optimize=True)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError):
        raise UnsupportedMediaTypeError("that file is not an image we can read; upload a PNG, JPEG or WebP") from None
    return out.getvalue()
