"""Pictures in posts: an author's image library (/posts/media) and a cover per post, through
the same checked, re-encoded upload pipeline; no file outlives the row that names it."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from blog.extensions import db
from blog.posts.models import Media, Post
from tests.conftest import AuthActions, csrf_token, page_statements, png, text_of
from tests.posts.conftest import count

SITE = "https://ink.example"


@pytest.fixture
def config_overrides(uploads: Path) -> dict[str, Any]:
    return {"UPLOAD_FOLDER": str(uploads), "SITE_URL": SITE, "THUMBNAIL_SIZE": 20}


def files(uploads: Path) -> set[str]:
    return {path.name for path in uploads.iterdir()} if uploads.exists() else set()


def upload(client: Any, data: bytes, filename: str = "harbour-at-dawn.png") -> Any:
    return client.post("/posts/media", content_type="multipart/form-data", data={
        "csrf_token": csrf_token(client, "/posts/media"), "image": (io.BytesIO(data), filename)})


def write(client: Any, path: str = "/posts/new", cover: bytes | None = None, **fields: Any) -> Any:
    data: dict[str, Any] = {"csrf_token": csrf_token(client, path), "title": "With a picture",
                            "body": "Text.", "tags": "", "publish": "y"} | fields
    if cover is not None:
        data["cover"] = (io.BytesIO(cover), "cover.png")
    return client.post(path, data=data, content_type="multipart/form-data")


@pytest.fixture
def author(make_user: Any, auth: AuthActions) -> Any:
    user = make_user("alice")
    auth.login("alice")
    return user


def only_media(app: Flask) -> Media:
    with app.app_context():
        return db.session.scalars(select(Media)).one()


# --- the library ---------------------------------------------------------------------------------


def test_an_author_uploads_a_picture_and_shows_it_in_a_post(app: Flask, client: Any, author: Any,
                                                           uploads: Path) -> None:
    response = upload(client, png("teal", (60, 40)), "/home/me/harbour-at-dawn.png")
    assert response.status_code == 302
    media = only_media(app)
    assert media.filename == "harbour-at-dawn.png"
    assert files(uploads) == {media.name, media.name.replace(".webp", "-thumb.webp")}
    library = text_of(client.get("/posts/media"))
    markdown = f"![harbour at dawn](/uploads/{media.name})"
    assert f'value="{markdown}"' in library
    write(client, body=f"Morning.\n\n{markdown}")
    page = client.get("/posts/with-a-picture").get_data(as_text=True)
    [img] = re.findall(r"<img [^>]+>", page.split('class="post-body"', 1)[1])
    assert f'src="/uploads/{media.name}"' in img and 'width="60" height="40"' in img
    assert 'loading="lazy"' in img and "srcset=" in img and 'alt="harbour at dawn"' in img
    served = client.get(f"/uploads/{media.name}")
    assert served.status_code == 200
    served.close()


def test_readers_and_visitors_have_no_library(client: Any, auth: AuthActions, make_user: Any) -> None:
    response = client.get("/posts/media")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    make_user("reader", roles=())
    auth.login("reader")
    assert client.get("/posts/media").status_code == 403


@pytest.mark.parametrize(("data", "message"), [
    (b"GIF89a not really", "JPEG, PNG or WebP"),
    (b"", "Choose an image to upload."),
])
def test_a_refused_upload_stores_nothing(app: Flask, client: Any, author: Any, uploads: Path,
                                         data: bytes, message: str) -> None:
    response = upload(client, data, "x.gif" if data else "")
    assert response.status_code == 400
    assert message in text_of(response)
    assert count(app, Media) == 0 and files(uploads) == set()


def test_a_library_is_its_owners_own(app: Flask, client: Any, author: Any, auth: AuthActions,
                                     make_user: Any) -> None:
    upload(client, png("red"))
    media = only_media(app)
    auth.logout()
    make_user("otto")
    auth.login("otto")
    assert media.name not in client.get("/posts/media").get_data(as_text=True)
    response = client.post(f"/posts/media/{media.id}/delete",
                           data={"csrf_token": csrf_token(client, "/posts/media")})
    assert response.status_code == 404
    assert count(app, Media) == 1


def test_an_image_still_shown_cannot_be_deleted(app: Flask, client: Any, author: Any,
                                                uploads: Path) -> None:
    upload(client, png("red"))
    media = only_media(app)
    write(client, title="Uses it", body=f"![red](/uploads/{media.name})")
    token = csrf_token(client, "/posts/media")
    response = client.post(f"/posts/media/{media.id}/delete", data={"csrf_token": token},
                           follow_redirects=True)
    assert "This image is still shown in “Uses it”" in text_of(response)
    assert count(app, Media) == 1 and media.name in files(uploads)
    post = client.post("/posts/uses-it/delete", data={"csrf_token": token})
    assert post.status_code == 302
    response = client.post(f"/posts/media/{media.id}/delete", data={"csrf_token": token},
                           follow_redirects=True)
    assert "The image is deleted." in text_of(response)
    assert count(app, Media) == 0 and files(uploads) == set()


def test_the_library_page_runs_a_fixed_number_of_statements(app: Flask, client: Any,
                                                            author: Any) -> None:
    upload(client, png("red"))
    one = page_statements(client, "/posts/media").count
    for colour in ("green", "blue", "white"):
        upload(client, png(colour))
    assert page_statements(client, "/posts/media").count == one


# --- covers -------------------------------------------------------------------------------------


def test_a_cover_on_the_post_in_lists_and_on_the_social_card(app: Flask, client: Any,
                                                             author: Any) -> None:
    assert write(client, cover=png("navy", (80, 40))).status_code == 302
    with app.app_context():
        cover = db.session.scalar(select(Post.cover))
    assert cover and cover.endswith("-80x40.webp")
    page = client.get("/posts/with-a-picture").get_data(as_text=True)
    assert f'<figure class="cover"><img src="/uploads/{cover}" width="80" height="40"' in page
    assert f'<meta property="og:image" content="{SITE}/uploads/{cover}">' in page
    assert f'<meta name="twitter:image" content="{SITE}/uploads/{cover}">' in page
    assert '<meta name="twitter:card" content="summary_large_image">' in page
    data = json.loads(re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.DOTALL)[1])
    assert data["image"] == f"{SITE}/uploads/{cover}"
    thumb = cover.replace(".webp", "-thumb.webp")
    for path in ("/", "/users/alice", "/search?q=picture"):
        listed = client.get(path).get_data(as_text=True)
        assert f'src="/uploads/{thumb}" width="20" height="10"' in listed, path


def test_covers_do_not_add_statements_to_lists(app: Flask, client: Any, author: Any) -> None:
    write(client, title="Plain", tags="art")
    before = {path: page_statements(client, path).count for path in ("/", "/tags/art", "/users/alice")}
    for number in range(3):
        write(client, title=f"Covered {number}", tags="art", cover=png("olive"))
    after = {path: page_statements(client, path).count for path in before}
    assert after == before


def test_replacing_and_removing_a_cover_deletes_the_old_file(app: Flask, client: Any, author: Any,
                                                             uploads: Path) -> None:
    write(client, cover=png("navy"))
    with app.app_context():
        first = db.session.scalar(select(Post.cover))
    edit = "/posts/with-a-picture/edit"
    assert write(client, edit, cover=png("maroon")).status_code == 302
    with app.app_context():
        second = db.session.scalar(select(Post.cover))
    assert second != first and first not in files(uploads) and second in files(uploads)
    assert 'name="remove_cover"' in client.get(edit).get_data(as_text=True)
    assert write(client, edit, remove_cover="y").status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Post.cover)) is None
    assert files(uploads) == set()


def test_a_refused_cover_changes_nothing(app: Flask, client: Any, author: Any, uploads: Path) -> None:
    write(client, cover=png("navy"))
    with app.app_context():
        cover = db.session.scalar(select(Post.cover))
    response = write(client, "/posts/with-a-picture/edit", cover=b"not an image", title="Renamed")
    assert response.status_code == 400
    assert "JPEG, PNG or WebP" in text_of(response)
    with app.app_context():
        post = db.session.scalars(select(Post)).one()
        assert (post.title, post.cover) == ("With a picture", cover)
    assert len(files(uploads)) == 2


def test_a_failed_save_leaves_no_cover_file_behind(app: Flask, client: Any, author: Any,
                                                   uploads: Path) -> None:
    # The cover is stored before the post's transaction; the service then refuses the post
    # (a time without "publish"), so the file must go again, for a new post and an edit.
    refused = {"publish": "", "publish_at": "2031-01-01T09:00"}
    response = write(client, cover=png("red"), **refused)
    assert response.status_code == 200 and "Tick “Publish”" in text_of(response)
    assert count(app, Post) == 0 and files(uploads) == set()
    write(client)
    response = write(client, "/posts/with-a-picture/edit", cover=png("red"), **refused)
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(Post.cover)) is None
    assert files(uploads) == set()


def test_deleting_a_post_deletes_its_cover(app: Flask, client: Any, author: Any, uploads: Path) -> None:
    write(client, cover=png("navy"))
    response = client.post("/posts/with-a-picture/delete",
                           data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 302
    assert files(uploads) == set()


@pytest.mark.parametrize("title", ["Media", "New"])
def test_a_post_never_takes_the_address_of_a_page(client: Any, author: Any, title: str) -> None:
    response = write(client, title=title)
    assert response.headers["Location"].endswith(f"/posts/{title.lower()}-2")
    assert client.get(response.headers["Location"]).status_code == 200
