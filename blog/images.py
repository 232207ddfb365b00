"""Uploaded images (products, avatars, pictures in posts): checking an upload and storing it
(:mod:`blog.uploads` serves them and gives templates their URLs).

An upload is never trusted: not its file name, not its declared content type, not its
pixels. :func:`save_image` reads at most ``UPLOAD_MAX_BYTES``, lets Pillow decide
what the bytes are (JPEG, PNG or WebP only), refuses images that declare too many pixels
before decoding them, decodes the rest completely, and writes a fresh WebP of its own
(upright, sRGB, at most ``IMAGE_SIZE`` pixels on its longest side, without EXIF, GPS, XMP or
ICC metadata) plus a thumbnail (``THUMBNAIL_SIZE``). What reaches the disk is therefore
always an image this module encoded, whatever was uploaded.

Stored names look like ``3f9c…e1-1600x1200.webp`` (thumbnail: ``3f9c…e1-1600x1200-thumb.webp``):
a random token, so names are never guessed or reused and can be cached forever, and the
full image's size, so pages can give ``<img>`` its width and height without opening the
file. Only names of exactly that shape are ever served or deleted, which also rules out
path traversal.

How a form uses it (the admin product form, say)::

    try:
        new = save_image(form.image.data)       # before the database transaction
    except ImageError as error:
        show_error(form, error)
    ...
    old, product.image = product.image, new             # inside transaction()
    ...
    delete_image(old)                           # after the commit succeeded
    # and delete_image(new) if the transaction failed instead

Files are written before the row that names them is committed, so a page never points at a
missing file; the price is an orphan file when the transaction fails and nobody deletes it.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import secrets
import tempfile
import threading
import warnings
from contextlib import suppress
from typing import IO, TypeGuard

from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError
from werkzeug.datastructures import FileStorage

from blog.errors import ServiceError
from blog.text import describe_bytes

try:  # LittleCMS ships with Pillow's wheels, but a Pillow built from source may lack it.
    from PIL import ImageCms
except ImportError:  # pragma: no cover
    ImageCms = None  # type: ignore[assignment]

log = logging.getLogger("inkwell.images")

#: Pillow's names for the formats accepted. MPO is what Pillow calls a JPEG carrying
#: several pictures (many phone and 3D cameras write them); only the first is kept.
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP"})
#: Only these decoders are ever tried on an upload: fewer parsers fed untrusted bytes.
_PILLOW_FORMATS = ("JPEG", "PNG", "WEBP")

#: WebP quality of the stored image and of the thumbnail (0-100).
IMAGE_QUALITY = 85
THUMBNAIL_QUALITY = 80

# fullmatch only: "$" would also accept a trailing newline. Sizes have no leading zero, so
# one picture has exactly one name.
_NAME = r"(?P<token>[0-9a-f]{32})-(?P<width>[1-9][0-9]{0,4})x(?P<height>[1-9][0-9]{0,4})"
_STORED_NAME = re.compile(_NAME + r"\.webp")
_SERVED_NAME = re.compile(_NAME + r"(?:-thumb)?\.webp")

# warnings.catch_warnings swaps the process-wide filter list and puts it back on exit; two
# uploads in threads of one worker would otherwise restore each other's lists.
_warnings_lock = threading.Lock()


class ImageError(ServiceError):
    """An upload refused: not a JPEG, PNG or WebP image, too big, too many pixels, or damaged.
    ``message`` says which, in words for the person who uploaded it; ``field`` is "image"."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="image")


# --- names and places --------------------------------------------------------------------


def is_stored_name(name: object) -> TypeGuard[str]:
    """Whether ``name`` is a name :func:`save_image` returns (not a thumbnail's)."""
    return isinstance(name, str) and _STORED_NAME.fullmatch(name) is not None


def _check_name(name: str) -> re.Match[str]:
    match = _STORED_NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"not a stored image name: {name!r}")
    return match


def is_served_name(name: str) -> bool:
    """Whether ``name`` is a stored image's or its thumbnail's name: the only files served."""
    return _SERVED_NAME.fullmatch(name) is not None


def thumbnail_name(name: str) -> str:
    """The thumbnail's file name for the stored image ``name``.

    Raises ValueError when ``name`` is not a stored image name.
    """
    _check_name(name)
    return name[: -len(".webp")] + "-thumb.webp"


def image_size(name: str, *, thumb: bool = False) -> tuple[int, int]:
    """Width and height in pixels of the stored image ``name`` (or of its thumbnail), read
    from the name itself, so no file is opened.

    Raises ValueError when ``name`` is not a stored image name.
    """
    match = _check_name(name)
    size = int(match["width"]), int(match["height"])
    return fit(size, current_app.config["THUMBNAIL_SIZE"]) if thumb else size


def fit(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """``size`` scaled down, keeping its proportions, so neither side exceeds ``longest``;
    never scaled up."""
    width, height = size
    if max(width, height) <= longest:
        return width, height
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def upload_folder() -> str:
    """The folder holding the images: ``UPLOAD_FOLDER``, or ``<instance>/uploads``."""
    return current_app.config["UPLOAD_FOLDER"] or os.path.join(current_app.instance_path, "uploads")


# --- saving ------------------------------------------------------------------------------


def save_image(file: FileStorage | IO[bytes]) -> str:
    """Check an uploaded image, store it re-encoded with its thumbnail, and return its name
    (at most 100 characters, for ``Product.image``).

    ``file`` is an uploaded file (a form's ``FileStorage``) or any binary file object; it
    is read from its current position and not closed. Its name and content type are
    ignored: only its bytes count.

    Raises :class:`ImageError` for any upload refused; an ``OSError`` while writing is the
    server's problem (disk full, permissions), not the upload's, and is not caught.
    """
    config = current_app.config
    limit = config["UPLOAD_MAX_BYTES"]
    # One byte more than allowed is enough to know the file is too big, without reading
    # (or holding in memory) all of it.
    data = file.read(limit + 1)
    if len(data) > limit:
        raise ImageError(f"The image is larger than {describe_bytes(limit)}.")
    image = _decode(data, max_pixels=config["IMAGE_MAX_PIXELS"], longest=config["IMAGE_SIZE"])
    thumbnail = _resize(image, fit(image.size, config["THUMBNAIL_SIZE"]))

    name = f"{secrets.token_hex(16)}-{image.width}x{image.height}.webp"
    folder = upload_folder()
    os.makedirs(folder, exist_ok=True)
    thumb_path = os.path.join(folder, thumbnail_name(name))
    # The thumbnail first: once the full image exists, its name is complete.
    _write_atomically(thumbnail, thumb_path, THUMBNAIL_QUALITY)
    try:
        _write_atomically(image, os.path.join(folder, name), IMAGE_QUALITY)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(thumb_path)
        raise
    return name


def delete_image(name: str | None) -> None:
    """Remove a stored image and its thumbnail (when an image is replaced or its product
    deleted). Files already gone are fine.

    Anything but a stored image name (None, a hand-typed value, ``../config.py``) deletes
    nothing: this never touches a file this module did not write.
    """
    if not name:
        return
    if not is_stored_name(name):
        log.warning("not deleting %r: not a stored image name", name)
        return
    folder = upload_folder()
    for filename in (name, thumbnail_name(name)):
        with suppress(FileNotFoundError):
            os.unlink(os.path.join(folder, filename))


def _too_many_pixels(max_pixels: int) -> ImageError:
    return ImageError(f"The image has too many pixels (the limit is {max_pixels / 1_000_000:g} "
                      "megapixels).")


_NOT_AN_IMAGE = "The file is not a JPEG, PNG or WebP image."
_DAMAGED = "The image is damaged or incomplete and cannot be read."


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open ``data`` (this reads the header only) and refuse it when it declares more than
    ``max_pixels`` pixels, before a single pixel is decoded: a few kilobytes of PNG can
    declare gigabytes of pixels."""
    with _warnings_lock, warnings.catch_warnings():
        # Pillow itself warns above Image.MAX_IMAGE_PIXELS and raises above twice that. A
        # warning would only be printed and the decoding would go on, so make it an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(max_pixels) from None
        except UnidentifiedImageError:
            raise ImageError(_NOT_AN_IMAGE) from None
        except Exception:  # noqa: BLE001  (a header cut short or garbled, see _decode)
            raise ImageError(_DAMAGED) from None
    if image.format not in ACCEPTED_FORMATS:  # pragma: no cover  (formats= already sees to it)
        image.close()
        raise ImageError(_NOT_AN_IMAGE)
    if image.width * image.height > max_pixels:
        image.close()
        raise _too_many_pixels(max_pixels)
    return image


def _decode(data: bytes, *, max_pixels: int, longest: int) -> Image.Image:
    """The picture in ``data``, fully decoded, upright, in sRGB ("RGB", or "RGBA" when it
    has transparency), at most ``longest`` pixels on its longest side, without metadata."""
    with _open(data, max_pixels) as probe:
        try:
            # Checks what it can without decoding (PNG chunk checksums, for one).
            probe.verify()
        except Exception:  # noqa: BLE001  (see below)
            raise ImageError(_DAMAGED) from None
    # verify() leaves the image unusable: decode from a fresh one.
    with _open(data, max_pixels) as source:
        try:
            # A JPEG can be decoded at 1/2, 1/4 or 1/8 of its size, much faster and in a
            # fraction of the memory, when the result is going to be scaled down anyway.
            source.draft(None, fit(source.size, longest))
            source.load()
            return _normalize(source, longest)
        except Exception:
            # Pillow's decoders signal bad input with many types (OSError for a truncated
            # file, SyntaxError, ValueError, struct.error, IndexError...). Whichever it is,
            # the uploader's answer is the same; the file is refused, nothing is stored.
            log.info("image refused: cannot be decoded", exc_info=True)
            raise ImageError(_DAMAGED) from None


def _normalize(source: Image.Image, longest: int) -> Image.Image:
    # Cameras store pixels as the sensor saw them plus an "Orientation" tag; once the EXIF is
    # dropped nothing would turn the picture upright, so turn the pixels themselves.
    image = ImageOps.exif_transpose(source)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    image = _to_srgb(image, "RGBA" if has_alpha else "RGB")
    image = _resize(image, fit(image.size, longest))
    # Nothing of the upload's metadata goes along (EXIF with GPS position and camera serial,
    # XMP, comments, the ICC profile now applied). Pillow's WebP writer only writes what
    # it is given anyway; clearing makes that independent of the writer.
    image.info = {}
    return image


def _to_srgb(image: Image.Image, mode: str) -> Image.Image:
    """``image`` in ``mode`` ("RGB" or "RGBA"), its colours in sRGB.

    A photo with its own colour profile (Display P3 from phones, Adobe RGB, CMYK) looks
    washed out or wrong if the profile is simply dropped, so its colours are converted to
    sRGB, the colour space browsers assume for an image without a profile.
    """
    if image.mode.startswith("I"):
        # 16-bit greyscale PNG: Pillow's plain conversion clips everything above 255 to
        # white, so scale it down to 8 bits first.
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    icc = image.info.get("icc_profile")
    if icc and ImageCms is not None and image.mode in ("RGB", "RGBA", "CMYK", "L") \
            and "transparency" not in image.info:
        try:
            converted = ImageCms.profileToProfile(
                image, ImageCms.ImageCmsProfile(io.BytesIO(icc)), _srgb_profile(), outputMode=mode)
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            # A broken or unusual profile: slightly off colours beat refusing the photo.
            log.info("image colour profile ignored", exc_info=True)
        else:
            assert converted is not None
            return converted
    return image.convert(mode) if image.mode != mode else image


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    # reducing_gap: shrink by whole factors first (fast, nearly lossless), then finish with
    # Lanczos; a large photo becomes a thumbnail several times faster.
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _write_atomically(image: Image.Image, path: str, quality: int) -> None:
    """Encode ``image`` as WebP to ``path``, so that ``path`` never exists half-written: a
    request arriving meanwhile sees no file (404), never a truncated one."""
    # The temporary name starts with a dot and ends in .tmp: never a servable name.
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            image.save(out, "WEBP", quality=quality)
        # mkstemp makes files only their owner may read; a front-end web server serving the
        # folder directly (as operators may set up) must be able to read them too.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
