"""Product images: what uploads are accepted and how they are stored, what is refused, how
the files are served, and how the catalogue and product pages show them."""

from __future__ import annotations

import io
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image, ImageCms
from werkzeug.datastructures import FileStorage

from blog.database import count_statements
from blog.database_session import transaction
from blog.errors import ServiceError
from blog.images import (
    ImageError,
    delete_image,
    image_size,
    is_stored_name,
    save_image,
    thumbnail_name,
)
from blog.shop.models import Product
from blog.uploads import CACHE_CONTROL, image_url, stored_image
from tests.conftest import create_product, page_statements

NAME = re.compile(r"[0-9a-f]{32}-(\d+)x(\d+)\.webp")
NOT_AN_IMAGE = "The file is not a JPEG, PNG or WebP image."
DAMAGED = "The image is damaged or incomplete and cannot be read."


@pytest.fixture
def config_overrides(uploads: Path) -> dict[str, Any]:
    # Never write into the repository's instance/ folder.
    return {"UPLOAD_FOLDER": str(uploads)}


# --- helpers -----------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(size: tuple[int, int] = (800, 600)) -> Image.Image:
    """A noisy picture: it compresses like a photograph, not like a flat colour."""
    return Image.effect_noise(size, 64).convert("RGB")


def upload(data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg") -> FileStorage:
    """What a form's file field hands the view."""
    return FileStorage(stream=io.BytesIO(data), filename=filename, content_type=content_type)


def save(app: Flask, data: bytes, **settings: Any) -> str:
    with app.app_context():
        app.config.update(settings)
        return save_image(upload(data))


def refusal(app: Flask, data: bytes, **settings: Any) -> str:
    """The message ``data`` is refused with."""
    with pytest.raises(ImageError) as caught:
        save(app, data, **settings)
    assert isinstance(caught.value, ServiceError) and caught.value.field == "image"
    return caught.value.message


def stored(uploads: Path, name: str) -> Image.Image:
    """A stored file, decoded (and closed)."""
    with Image.open(uploads / name) as image:
        image.load()
        return image


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` × ``height`` black pixels: tens of kilobytes as a file,
    hundreds of megabytes once decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the row's bits
    compressor = zlib.compressobj(9)
    rows = b"".join(compressor.compress(row * 1000) for _ in range(height // 1000))
    idat = rows + compressor.compress(row * (height % 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


# --- accepted uploads --------------------------------------------------------------------


def test_a_jpeg_is_stored_as_webp_with_a_thumbnail(app: Flask, uploads: Path) -> None:
    name = save(app, encode(photo((800, 600)), "JPEG", quality=90))
    assert NAME.fullmatch(name) and len(name) <= 100 and is_stored_name(name)
    assert name.endswith("-800x600.webp")
    assert files(uploads) == sorted([name, thumbnail_name(name)])  # no temporary file left
    full, thumb = stored(uploads, name), stored(uploads, thumbnail_name(name))
    assert (full.format, full.mode, full.size) == ("WEBP", "RGB", (800, 600))
    assert (thumb.format, thumb.size) == ("WEBP", (400, 300))
    assert (uploads / thumbnail_name(name)).stat().st_size < (uploads / name).stat().st_size / 2
    with app.app_context():
        assert image_size(name) == (800, 600) and image_size(name, thumb=True) == (400, 300)


def test_every_upload_gets_a_new_name(app: Flask) -> None:
    data = encode(photo((40, 30)), "PNG")
    assert save(app, data) != save(app, data)


def test_a_large_image_is_scaled_down_and_a_small_one_not_up(app: Flask, uploads: Path) -> None:
    gradient = Image.linear_gradient("L").resize((3000, 1000)).convert("RGB")
    big = save(app, encode(gradient, "PNG"))
    assert big.endswith("-1600x533.webp")
    assert stored(uploads, big).size == (1600, 533)
    assert stored(uploads, thumbnail_name(big)).size == (400, 133)

    small = save(app, encode(photo((120, 80)), "JPEG"))
    assert stored(uploads, small).size == stored(uploads, thumbnail_name(small)).size == (120, 80)

    tall = save(app, encode(photo((300, 900)), "JPEG"), IMAGE_SIZE=600, THUMBNAIL_SIZE=90)
    assert stored(uploads, tall).size == (200, 600)
    assert stored(uploads, thumbnail_name(tall)).size == (30, 90)


def test_png_transparency_is_kept(app: Flask, uploads: Path) -> None:
    image = Image.new("RGBA", (64, 32), (200, 30, 30, 255))
    image.paste((0, 0, 0, 0), (0, 0, 32, 32))  # left half fully transparent
    name = save(app, encode(image, "PNG"))
    for stored_name in (name, thumbnail_name(name)):
        result = stored(uploads, stored_name)
        assert result.mode == "RGBA"
        assert result.getpixel((2, 2))[3] == 0
        assert result.getpixel((60, 30))[3] == 255

    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0])
    palette.paste(0, (0, 0, 8, 16))
    name = save(app, encode(palette, "PNG", transparency=0))
    result = stored(uploads, name)
    assert result.mode == "RGBA" and result.getpixel((1, 1))[3] == 0 and result.getpixel((14, 1))[3] == 255


def test_webp_and_multi_picture_jpeg_are_accepted(app: Flask, uploads: Path) -> None:
    webp = save(app, encode(photo((300, 200)), "WEBP", xmp=b"<x:xmpmeta>secret</x:xmpmeta>"))
    assert stored(uploads, webp).size == (300, 200)
    assert b"secret" not in (uploads / webp).read_bytes()

    mpo = encode(photo((300, 200)), "MPO", save_all=True, append_images=[photo((300, 200))])
    with Image.open(io.BytesIO(mpo)) as image:
        assert image.format == "MPO"
    assert stored(uploads, save(app, mpo)).size == (300, 200)


def test_metadata_is_removed_and_the_orientation_applied(app: Flask, uploads: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; rotate 90° clockwise to view
    exif[0x010F] = "InkwellCam"  # Make
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}  # GPS position
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = Image.new("RGB", (300, 100), (20, 40, 200))
    source.paste((250, 250, 0), (0, 0, 30, 100))  # a yellow band at the left edge
    data = encode(source, "JPEG", exif=exif, icc_profile=srgb, comment=b"shot at home")
    with Image.open(io.BytesIO(data)) as original:  # the upload really carries it all
        assert original.getexif().get_ifd(0x8825)[2] == (51.0, 30.0, 0.0)
        assert "icc_profile" in original.info and original.info.get("comment") == b"shot at home"

    name = save(app, data)
    assert name.endswith("-100x300.webp")  # turned upright
    for stored_name in (name, thumbnail_name(name)):
        raw = (uploads / stored_name).read_bytes()
        assert b"EXIF" not in raw and b"ICCP" not in raw and b"XMP" not in raw
        assert b"InkwellCam" not in raw and b"shot at home" not in raw
        result = stored(uploads, stored_name)
        assert not result.getexif() and not {"exif", "icc_profile", "xmp"} & set(result.info)
    red, green, blue = stored(uploads, name).getpixel((50, 5))  # the band is now on top
    assert red > 200 and green > 200 and blue < 80


def test_colours_are_converted_not_clipped(app: Flask, uploads: Path) -> None:
    cmyk = save(app, encode(Image.new("CMYK", (30, 10), (0, 255, 255, 0)), "JPEG"))
    red, green, blue = stored(uploads, cmyk).getpixel((15, 5))
    assert red > 200 and green < 60 and blue < 60

    deep_grey = save(app, encode(Image.new("I;16", (30, 10), 40000), "PNG"))  # 16 bits a pixel
    assert 140 < stored(uploads, deep_grey).getpixel((15, 5))[0] < 170  # not clipped to white

    # A colour profile that cannot be read is ignored, not a reason to refuse the photo.
    broken = save(app, encode(Image.new("RGB", (30, 10), (0, 128, 0)), "JPEG", icc_profile=b"junk"))
    assert stored(uploads, broken).size == (30, 10)


# --- refused uploads ---------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    pytest.param(b"Dear shop, this is not a picture.\n", id="text renamed .jpg"),
    pytest.param(b"", id="empty"),
    pytest.param(encode(photo((20, 20)), "GIF"), id="gif"),
    pytest.param(encode(photo((20, 20)), "BMP"), id="bmp"),
    pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', id="svg"),
])
def test_anything_but_jpeg_png_or_webp_is_refused(app: Flask, uploads: Path, data: bytes) -> None:
    # The name and the declared type say JPEG; only the bytes count.
    assert refusal(app, data) == NOT_AN_IMAGE
    assert files(uploads) == []


def test_a_file_over_the_size_limit_is_refused(app: Flask, uploads: Path) -> None:
    data = encode(photo((100, 100)), "PNG")
    assert refusal(app, data, UPLOAD_MAX_BYTES=len(data) - 1) == \
        f"The image is larger than {(len(data) - 1) / 1024:.3g} KB."
    assert files(uploads) == []
    assert save(app, data, UPLOAD_MAX_BYTES=len(data))  # exactly the limit is fine
    assert refusal(app, data, UPLOAD_MAX_BYTES=100) == "The image is larger than 100 bytes."

    class Endless(io.RawIOBase):
        """An upload that never ends; remembers how much was asked of it."""
        asked = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            Endless.asked += len(buffer)
            buffer[:] = b"\xff" * len(buffer)
            return len(buffer)

    with app.app_context():
        app.config["UPLOAD_MAX_BYTES"] = 5 * 1024 * 1024
        with pytest.raises(ImageError, match=r"^The image is larger than 5 MB\.$"), Endless() as stream:
            save_image(stream)
    assert Endless.asked == 5 * 1024 * 1024 + 1  # read no further than needed to know


@pytest.mark.parametrize(("width", "height", "settings"), [
    # Over twice Pillow's own limit: Pillow raises as soon as it has read the header.
    pytest.param(20_000, 20_000, {}, id="400-megapixel png"),
    # Between Pillow's limit and twice it Pillow only warns, which in production would not
    # stop it; the warning must refuse the image anyway.
    pytest.param(10_000, 10_000, {"IMAGE_MAX_PIXELS": 500_000_000}, id="pillow warns",
                 marks=pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")),
    # Below Pillow's limits, over the site's.
    pytest.param(3000, 3000, {}, id="9-megapixel png, 8 allowed"),
])
def test_a_decompression_bomb_is_refused(app: Flask, uploads: Path, width: int, height: int,
                                         settings: dict[str, Any]) -> None:
    bomb = png_bomb(width, height)
    assert len(bomb) < 60_000
    settings.setdefault("IMAGE_MAX_PIXELS", 8_000_000)
    message = refusal(app, bomb, **settings)
    assert message.startswith("The image has too many pixels (the limit is ")
    assert files(uploads) == []


def test_the_pixel_limit_is_a_setting(app: Flask) -> None:
    data = encode(photo((600, 400)), "JPEG")
    assert refusal(app, data, IMAGE_MAX_PIXELS=239_999) == \
        "The image has too many pixels (the limit is 0.239999 megapixels)."
    assert save(app, data, IMAGE_MAX_PIXELS=240_000)


def _corrupt_png() -> bytes:
    data = bytearray(encode(photo((64, 64)), "PNG"))
    data[data.index(b"IDAT") + 20] ^= 0xFF  # the checksum no longer matches
    return bytes(data)


@pytest.mark.parametrize("data", [
    pytest.param(encode(photo(), "JPEG")[:4000], id="truncated jpeg"),
    pytest.param(encode(photo(), "JPEG")[:12], id="jpeg header only"),
    pytest.param(encode(photo(), "PNG")[:5000], id="truncated png"),
    pytest.param(_corrupt_png(), id="png with a bad checksum"),
    pytest.param(encode(photo(), "WEBP")[:3000], id="truncated webp"),
])
def test_a_damaged_image_is_refused(app: Flask, uploads: Path, data: bytes) -> None:
    assert refusal(app, data) == DAMAGED
    assert files(uploads) == []


def test_nothing_is_left_behind_when_writing_fails(app: Flask, uploads: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(photo((40, 30)), "PNG")
    real_save, calls = Image.Image.save, []

    def save_then_fail(self: Image.Image, fp: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(fp)
        if len(calls) == 2:  # the thumbnail is written; the full image hits a full disk
            fp.write(b"half an image")
            raise OSError(28, "No space left on device")
        real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_then_fail)
    with pytest.raises(OSError, match="No space left"):  # the server's problem, not an ImageError
        save(app, data)
    assert len(calls) == 2
    assert files(uploads) == []  # neither the thumbnail nor the half-written temporary file


# --- names and deleting ------------------------------------------------------------------


def test_delete_removes_both_files_and_nothing_else(app: Flask, uploads: Path, tmp_path: Path) -> None:
    keep = save(app, encode(photo((40, 30)), "PNG"))
    gone = save(app, encode(photo((40, 30)), "PNG"))
    (tmp_path / "config.py").write_text("SECRET_KEY = 'x'\n")
    (uploads / "notes.txt").write_text("keep me\n")
    with app.app_context():
        delete_image(gone)
        delete_image(gone)  # already gone: fine
        delete_image(None)
        for name in ("../config.py", "notes.txt", thumbnail_name(keep), keep + "\n", keep.upper()):
            delete_image(name)  # not stored names: nothing happens
    assert files(uploads) == sorted([keep, thumbnail_name(keep), "notes.txt"])
    assert (tmp_path / "config.py").exists()


def test_names_are_checked(app: Flask) -> None:
    name = "0123456789abcdef0123456789abcdef-640x480.webp"
    with app.test_request_context():
        assert thumbnail_name(name) == "0123456789abcdef0123456789abcdef-640x480-thumb.webp"
        assert image_url(name) == f"/uploads/{name}"
        assert image_url(name, thumb=True) == f"/uploads/{thumbnail_name(name)}"
        assert stored_image(name, thumb=True) == (f"/uploads/{thumbnail_name(name)}", 400, 300)
        for bad in ("../config.py", thumbnail_name(name), name[1:], name.replace("640", "0640"),
                    name + "\n", name.replace(".webp", ".png")):
            assert not is_stored_name(bad)
            assert stored_image(bad) is None
            with pytest.raises(ValueError):
                thumbnail_name(bad)
            with pytest.raises(ValueError):
                image_url(bad)
        assert stored_image(None) is None and stored_image("") is None


# --- serving -----------------------------------------------------------------------------


def test_images_are_served_cacheable_for_a_year(app: Flask, client: Any, uploads: Path) -> None:
    name = save(app, encode(photo((200, 100)), "JPEG"))
    for served in (name, thumbnail_name(name)):
        with count_statements() as counted:
            response = client.get(f"/uploads/{served}")
        assert response.status_code == 200
        assert counted.count == 0
        assert response.mimetype == "image/webp"
        assert response.headers["Cache-Control"] == CACHE_CONTROL == "public, max-age=31536000, immutable"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" in response.headers
        assert "Set-Cookie" not in response.headers  # a shared cache may keep it
        assert response.data == (uploads / served).read_bytes()
        again = client.get(f"/uploads/{served}", headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304
        response.close()
        again.close()


def test_serving_answers_404_to_anything_else(app: Flask, client: Any, uploads: Path, tmp_path: Path) -> None:
    name = save(app, encode(photo((20, 20)), "PNG"))
    (tmp_path / "config.py").write_text("SECRET_KEY = 'x'\n")
    (uploads / "x.png").write_bytes(encode(photo((20, 20)), "PNG"))
    (uploads / ".upload-abc.tmp").write_bytes(b"half")
    missing = "f" * 32 + "-20x20.webp"
    for path in ("/uploads/../config.py", "/uploads/..%2Fconfig.py", "/uploads/x.png",
                 "/uploads/.upload-abc.tmp", f"/uploads/{missing}", f"/uploads/{name.upper()}",
                 f"/uploads/{name}%0A", f"/uploads/{name.replace('.webp', '.png')}", "/uploads/"):
        response = client.get(path)
        assert response.status_code == 404, path
        response.close()


# --- pages -------------------------------------------------------------------------------


def _set_image(app: Flask, product: Product, name: str | None) -> None:
    with app.app_context(), transaction() as session:
        row = session.get(Product, product.id)
        assert row is not None
        row.image = name


def test_catalogue_and_product_pages_show_the_image(app: Flask, client: Any) -> None:
    with app.app_context():
        poster = create_product('Poster "Blue" & Co')
        plain = create_product("Plain notebook")
    before = {path: page_statements(client, path).count
              for path in ("/shop/", f"/shop/products/{poster.slug}")}
    name = save(app, encode(photo((800, 600)), "JPEG"))
    _set_image(app, poster, name)
    alt = 'alt="Poster &#34;Blue&#34; &amp; Co"'

    catalogue = client.get("/shop/").get_data(as_text=True)
    thumbs = re.findall(r"<img [^>]*>", catalogue)
    assert thumbs == [(f'<img src="/uploads/{thumbnail_name(name)}" {alt} width="400" height="300" '
                      'loading="lazy">')]
    assert catalogue.count(f'href="/shop/products/{poster.slug}"') == 2  # picture and name

    page = client.get(f"/shop/products/{poster.slug}").get_data(as_text=True)
    assert re.findall(r"<img [^>]*>", page) == [f'<img src="/uploads/{name}" {alt} width="800" height="600">']
    assert "<img" not in client.get(f"/shop/products/{plain.slug}").get_data(as_text=True)

    # The picture's name comes with the product's row: not one statement more.
    assert {path: page_statements(client, path).count for path in before} == before
    for url in (f"/uploads/{name}", f"/uploads/{thumbnail_name(name)}"):  # no broken links
        response = client.get(url)
        assert response.status_code == 200
        response.close()


def test_a_value_that_is_no_stored_name_shows_no_picture(app: Flask, client: Any) -> None:
    with app.app_context():
        product = create_product("Odd")
    _set_image(app, product, "../../etc/passwd")
    for path in ("/shop/", f"/shop/products/{product.slug}"):
        response = client.get(path)
        assert response.status_code == 200 and b"<img" not in response.data
