"""An author's image library (``/posts/media``): pictures uploaded once, shown in posts by
pasting their Markdown.

Each upload goes through :func:`blog.images.save_image` (checked by content, re-encoded,
metadata stripped, resized, with a thumbnail) before the row that names it is written; a
failed transaction deletes the file again. An image a post still shows cannot be deleted:
the post would show a hole.
"""

from __future__ import annotations

import os
from typing import IO, Any

from sqlalchemy import Select, or_, select
from werkzeug.datastructures import FileStorage

from blog.accounts.models import User
from blog.database import escape_like
from blog.database_session import transaction
from blog.errors import ServiceError
from blog.extensions import db
from blog.images import delete_image, save_image
from blog.posts.models import Media, Post
from blog.text import xml_safe

#: How many posts an image still in use names in the refusal to delete it.
NAMED_POSTS = 3


class MediaError(ServiceError):
    """A library change that cannot be made; ``field`` names the form field."""


def library(owner: User) -> Select[Any]:
    """An author's images, newest first."""
    return (select(Media).where(Media.owner_id == owner.id)
            .order_by(Media.created_at.desc(), Media.id.desc()))


def get_media(media_id: int) -> Media | None:
    return db.session.get(Media, media_id)


def display_filename(filename: str | None) -> str:
    """What the file was called on the uploader's computer, for people to recognise: the last
    path part only (browsers on Windows used to send the whole path), printable, at most 200
    characters. Never used to name a file on disk."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in xml_safe(name) if char.isprintable()).strip()
    return name[:200]


def alt_text(media: Media) -> str:
    """A first alt text for the Markdown to paste: the file's name without its extension,
    words apart ("harbour-at-dawn.jpg" -> "harbour at dawn"). The author should say what the
    picture shows; this is only a start."""
    stem = os.path.splitext(media.filename)[0]
    words = " ".join(stem.replace("_", " ").replace("-", " ").split())
    return words.replace("[", "").replace("]", "") or "image"


def markdown_for(media: Media) -> str:
    """The Markdown that shows the image in a post."""
    return f"![{alt_text(media)}](/uploads/{media.name})"


def upload(owner: User, file: FileStorage | IO[bytes], filename: str | None = None) -> Media:
    """Check and store an uploaded image and add it to ``owner``'s library.

    Raises :class:`blog.images.ImageError` for an upload refused; nothing is stored then, and
    no file stays behind when the database write fails.
    """
    name = save_image(file)
    if filename is None:
        filename = getattr(file, "filename", None)
    try:
        with transaction() as session:
            media = Media(owner_id=owner.id, name=name, filename=display_filename(filename))
            session.add(media)
            session.flush()
    except BaseException:
        delete_image(name)
        raise
    return media


def posts_showing(media: Media, limit: int = NAMED_POSTS) -> list[Post]:
    """Posts whose text or cover shows the image (a scan of the bodies: deleting an image is
    rare; a post is never left pointing at a missing file)."""
    pattern = "%/uploads/" + escape_like(media.name) + "%"
    return list(db.session.scalars(
        select(Post).where(or_(Post.cover == media.name, Post.body.like(pattern, escape="\\")))
        .order_by(Post.id).limit(limit)))


def delete(media: Media) -> None:
    """Delete an image from the library and from the disk.

    Raises MediaError, changing nothing, while a post still shows it (the message names up to
    three). The check and the deletion are one transaction; the file goes once it committed.
    """
    with transaction() as session:
        using = posts_showing(media)
        if using:
            titles = ", ".join(f"“{post.title}”" for post in using)
            raise MediaError(f"This image is still shown in {titles}. Remove it from "
                             "there first.")
        session.delete(media)
    delete_image(media.name)
