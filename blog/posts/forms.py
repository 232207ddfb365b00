"""Blog forms."""

from __future__ import annotations

from datetime import datetime

from flask_wtf.file import FileField
from werkzeug.datastructures import FileStorage
from wtforms import BooleanField, DateTimeLocalField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from blog.forms import SiteForm
from blog.posts.services import parse_tags
from blog.text import xml_safe

MAX_TAGS = 10


def _xml_safe(value: object) -> object:
    """A filter: what the member typed, without the characters XML cannot carry, so that the
    validators (DataRequired, Length) judge the text that will be stored."""
    return xml_safe(value) if isinstance(value, str) else value


class PostForm(SiteForm):
    title = StringField("Title", filters=[_xml_safe], validators=[DataRequired(), Length(max=200)])
    body = TextAreaField("Body (Markdown)", filters=[_xml_safe],
                         validators=[DataRequired(), Length(max=100_000)])
    tags = StringField("Tags", filters=[_xml_safe], validators=[Length(max=600)])
    publish = BooleanField("Publish (leave unticked to save a draft)")
    publish_at = DateTimeLocalField("Publish at (optional)", format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
                                    validators=[Optional()])
    members_only = BooleanField("Members only (visitors see the title and excerpt)")
    send_newsletter = BooleanField("Email it to the newsletter's subscribers when it is published (once)")
    cover = FileField("Cover image (JPEG, PNG or WebP)")
    remove_cover = BooleanField("Remove the cover image")

    def validate_tags(self, field: StringField) -> None:
        names = parse_tags(field.data or "")
        if len(names) > MAX_TAGS:
            raise ValidationError(f"Use at most {MAX_TAGS} tags.")
        too_long = [name for name in names if len(name) > 50]
        if too_long:
            raise ValidationError(f"Tags can be at most 50 characters: {too_long[0][:20]}…")

    def cover_upload(self) -> FileStorage | None:
        """The cover image chosen, if any."""
        return _upload(self.cover.data)

    def publish_time(self) -> datetime | None:
        """The time typed, in the site's zone, as UTC; None when the field is empty."""
        from blog.timezone import from_site_time

        return from_site_time(self.publish_at.data) if self.publish_at.data else None


class MediaForm(SiteForm):
    image = FileField("Image (JPEG, PNG or WebP)")

    def upload(self) -> FileStorage | None:
        """The image chosen, if any."""
        return _upload(self.image.data)


def _upload(data: object) -> FileStorage | None:
    return data if isinstance(data, FileStorage) and data.filename else None


class CommentForm(SiteForm):
    body = TextAreaField("Comment", filters=[_xml_safe], validators=[DataRequired(), Length(max=5000)])
