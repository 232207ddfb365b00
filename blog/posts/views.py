"""Blog pages: lists, posts, writing, comments, likes, follows, search and the Atom feed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy import Select
from werkzeug.wrappers import Response as BaseResponse

from blog.accounts.services import get_user_by_username
from blog.database import utcnow
from blog.database_session import paginate as paginate_by
from blog.errors import ServiceError
from blog.extensions import limiter
from blog.forms import ButtonForm, show_error
from blog.images import ImageError, is_stored_name, save_image
from blog.posts import fragments, services
from blog.posts import media as media_library
from blog.posts.forms import CommentForm, MediaForm, PostForm
from blog.posts.models import Media, Post
from blog.replica import reads_from_replica
from blog.security import (
    can_edit_any_post,
    can_edit_post,
    can_write,
    capability_required,
    member_key,
    require,
    require_owner,
    safe_next_url,
)
from blog.timezone import to_site_time
from blog.urls import site_name, site_url

bp = Blueprint("blog", __name__)

ATOM_ENTRIES = 20


#: New posts and edits share one budget per member (``POST_RATE_LIMIT``).
_post_limit = limiter.shared_limit(lambda: current_app.config["POST_RATE_LIMIT"], scope="write-post",
                                   key_func=member_key, methods=["POST"])
_media_limit = limiter.limit(lambda: current_app.config["MEDIA_RATE_LIMIT"], key_func=member_key,
                             methods=["POST"])
_comment_limit = limiter.limit(lambda: current_app.config["COMMENT_RATE_LIMIT"], key_func=member_key,
                               methods=["POST"])


def _visible_post(slug: str) -> Post:
    """The post called ``slug``; a draft or a scheduled post exists only for those who may
    edit it (its author, editors, admins): 404 for everyone else."""
    post = services.get_post(slug)
    if post is None:
        abort(404)
    if not services.is_public(post):
        require(can_edit_post(current_user, post.author_id), conceal=True)
    return post


def _back(default: str) -> BaseResponse:
    """Redirect to the form's ``next`` when it is a local path, else to ``default``."""
    return redirect(safe_next_url(request.form.get("next")) or default)


def _current_user():  # the real object, not the proxy, for services that store it
    return current_user._get_current_object()


def _member_forms(comment_form: CommentForm | None = None) -> dict[str, object]:
    """The buttons and comment form a logged-in member sees. Anonymous visitors get none:
    building a form mints a CSRF token, and with it a session cookie on a public page."""
    if not current_user.is_authenticated:
        return {"comment_form": None, "action_form": None}
    return {"comment_form": comment_form or CommentForm(), "action_form": ButtonForm(formdata=None)}


def _post_list(stmt: Callable[[], Select[Any]], empty: str) -> Markup:
    """The page of posts this request asks for, rendered (a visitor's from the cache)."""
    return fragments.visitor_list(lambda: render_template(
        "blog/_post_list.html", page=services.newest_page(stmt()), endpoint=request.endpoint, empty=empty))


@bp.route("/")
@reads_from_replica
def index() -> str:
    posts = _post_list(services.listed_posts, "Nothing has been published yet.")
    return render_template("blog/index.html", posts=posts)


@bp.route("/posts/<slug>")
def post(slug: str) -> str:
    post = _visible_post(slug)
    return render_template("blog/post.html", post=post, **_member_forms())


@bp.route("/posts/new", methods=["GET", "POST"])
@capability_required(can_write)
@_post_limit
def new_post() -> BaseResponse | str:
    form = PostForm()
    if form.validate_on_submit():
        try:
            cover = _stored_cover(form)
            post = services.create_post(_current_user(), form.title.data, form.body.data,
                                        form.tags.data, form.publish.data,
                                        publish_at=form.publish_time(),
                                        members_only=form.members_only.data, cover=cover,
                                        send_newsletter=form.send_newsletter.data)
        except ServiceError as error:
            show_error(form, error)
        else:
            flash(_saved_message(post), "success")
            return redirect(url_for("blog.post", slug=post.slug))
    return render_template("blog/edit.html", form=form, post=None)


def _stored_cover(form: PostForm) -> str | None:
    """The cover image uploaded with the form, checked and stored (before the post's
    transaction, which deletes it again if it fails); None when none was chosen. Raises
    BlogError on the ``cover`` field for a file refused."""
    upload = form.cover_upload()
    if upload is None:
        return None
    try:
        return save_image(upload)
    except ImageError as error:
        raise services.BlogError(error.message, "cover") from error


def _saved_message(post: Post) -> str:
    if not post.published:
        return "Draft saved; only you and the editors can see it."
    if post.published_at is not None and services.is_scheduled(post):
        return f"Scheduled for {to_site_time(post.published_at).strftime('%-d %B %Y, %H:%M %Z')}."
    return "Published."


@bp.route("/posts/media", methods=["GET", "POST"])
@capability_required(can_write)
@_media_limit
def media() -> BaseResponse | str | tuple[str, int]:
    """The member's image library: upload, and the Markdown to paste for each image."""
    form = MediaForm()
    if form.validate_on_submit():
        upload = form.upload()
        if upload is None:
            form.image.errors.append("Choose an image to upload.")
        else:
            try:
                added = media_library.upload(_current_user(), upload)
            except ImageError as error:
                show_error(form, error)
            else:
                flash(f"Added {added.filename or 'the image'}; paste its Markdown into a post.",
                      "success")
                return redirect(url_for("blog.media"))
    page = paginate_by(media_library.library(current_user), "MEDIA_PER_PAGE")
    html = render_template("blog/media.html", form=form, page=page,
                           action_form=ButtonForm(formdata=None))
    return (html, 400) if form.is_submitted() else html


@bp.route("/posts/media/<id:media_id>/delete", methods=["POST"])
@login_required
def delete_media(media_id: int) -> BaseResponse:
    item = media_library.get_media(media_id) or abort(404)
    # Only its owner (or an admin) sees an image in a library: 404 for anyone else.
    require_owner(item.owner_id, conceal=True)
    try:
        media_library.delete(item)
    except media_library.MediaError as error:
        flash(error.message, "error")
    else:
        flash("The image is deleted.", "info")
    return redirect(url_for("blog.media"))


@bp.route("/posts/<slug>/edit", methods=["GET", "POST"])
@login_required
@_post_limit
def edit_post(slug: str) -> BaseResponse | str | tuple[str, int]:
    post = services.get_post_for_update(slug) or abort(404)
    require(can_edit_post(current_user, post.author_id), conceal=not services.is_public(post))
    form = PostForm(obj=post)
    if request.method == "GET":
        form.tags.data = ", ".join(tag.name for tag in post.tags)
        form.publish.data = post.published
        form.publish_at.data = (to_site_time(post.published_at).replace(tzinfo=None)
                                if post.published_at is not None and services.is_scheduled(post)
                                else None)
    if form.validate_on_submit():
        try:
            cover = _stored_cover(form)
            services.update_post(post, form.title.data, form.body.data, form.tags.data,
                                 form.publish.data, publish_at=form.publish_time(),
                                 members_only=form.members_only.data, cover=cover,
                                 remove_cover=form.remove_cover.data,
                                 send_newsletter=form.send_newsletter.data)
        except ServiceError as error:
            show_error(form, error)
            status = 409 if error.message == services.CHANGED_MEANWHILE else 400
            return render_template("blog/edit.html", form=form, post=post), status
        flash(_saved_message(post), "success")
        return redirect(url_for("blog.post", slug=post.slug))
    return render_template("blog/edit.html", form=form, post=post)


@bp.route("/posts/<slug>/delete", methods=["POST"])
@login_required
def delete_post(slug: str) -> BaseResponse:
    post = services.get_post_for_update(slug) or abort(404)
    require(can_edit_post(current_user, post.author_id), conceal=not services.is_public(post))
    services.delete_post(post)
    flash("The post has been deleted.", "info")
    return redirect(url_for("blog.index"))


@bp.route("/posts/<slug>/comments", methods=["POST"])
@login_required
@_comment_limit
def add_comment(slug: str) -> BaseResponse | tuple[str, int]:
    post = _visible_post(slug)
    form = CommentForm()
    if form.validate_on_submit():
        try:
            services.add_comment(post, _current_user(), form.body.data)
        except services.BlogError as error:
            show_error(form, error, "body")
        else:
            flash("Comment added.", "success")
            return redirect(url_for("blog.post", slug=slug) + "#comments")
    html = render_template("blog/post.html", post=post, **_member_forms(form))
    return html, 400


@bp.route("/comments/<id:comment_id>/delete", methods=["POST"])
@login_required
def delete_comment(comment_id: int) -> BaseResponse:
    comment = services.get_comment(comment_id) or abort(404)
    if not services.is_public(comment.post):
        require(can_edit_post(current_user, comment.post.author_id), conceal=True)
    # The comment's author, the post's author, or an editor (who moderates).
    require(comment.author_id == current_user.id or current_user.id == comment.post.author_id
            or can_edit_any_post(current_user))
    services.delete_comment(comment)
    flash("Comment deleted.", "info")
    return redirect(url_for("blog.post", slug=comment.post.slug) + "#comments")


@bp.route("/posts/<slug>/like", methods=["POST"])
@login_required
def like(slug: str) -> BaseResponse:
    post = _visible_post(slug)
    try:
        services.toggle_like(_current_user(), post)
    except services.BlogError as error:
        flash(error.message, "error")
    return _back(url_for("blog.post", slug=slug))


@bp.route("/tags/<name>")
@reads_from_replica
def tag(name: str) -> str:
    tag = services.get_tag(name) or abort(404)
    posts = _post_list(lambda: services.posts_tagged(tag), "No published posts carry this tag.")
    return render_template("blog/tag.html", tag=tag, posts=posts)


@bp.route("/users/<username>")
@reads_from_replica
def profile(username: str) -> str:
    user = get_user_by_username(username, with_roles=True)
    if user is None or not (user.active or (current_user.is_authenticated and current_user.is_admin)):
        abort(404)
    page = services.profile_page(user)
    followers, following = services.follow_counts(user)
    follows_them = (current_user.is_authenticated and current_user.id != user.id
                    and services.is_following(current_user.id, user.id))
    return render_template("blog/profile.html", user=user, page=page, followers=followers,
                           following=following, follows_them=follows_them,
                           action_form=_member_forms()["action_form"])


def _member(username: str):
    user = get_user_by_username(username)
    if user is None or not user.active:
        abort(404)
    return user


@bp.route("/users/<username>/follow", methods=["POST"])
@login_required
def follow(username: str) -> BaseResponse:
    user = _member(username)
    try:
        services.follow(_current_user(), user)
    except services.BlogError as error:
        flash(error.message, "error")
    else:
        flash(f"You now follow {user.username}.", "success")
    return _back(url_for("blog.profile", username=user.username))


@bp.route("/users/<username>/unfollow", methods=["POST"])
@login_required
def unfollow(username: str) -> BaseResponse:
    user = _member(username)
    services.unfollow(_current_user(), user)
    flash(f"You no longer follow {user.username}.", "info")
    return _back(url_for("blog.profile", username=user.username))


@bp.route("/feed")
@reads_from_replica
@login_required
def feed() -> str:
    page = services.newest_page(services.feed_for(_current_user()))
    return render_template("blog/feed.html", page=page)


@bp.route("/search")
def search() -> str:
    """Full-text search (:mod:`blog.search`), best match first or ``?sort=date``; any text is
    safe. Each result shows its body's matching words highlighted, when the body matched and
    the reader may read it (a members-only post shows visitors its plain excerpt only)."""
    from blog.search import parse, snippets

    query = request.args.get("q", "").strip()[:200]
    sort = request.args.get("sort", "rank")
    if sort not in services.SEARCH_ORDERS:
        sort = "rank"
    parsed = parse(query)
    page = services.search_page(query, sort) if query else None
    excerpts = {}
    if page is not None and parsed is not None:
        readable = [post.id for post in page.items
                    if not post.members_only or current_user.is_authenticated]
        excerpts = snippets(readable, parsed)
    return render_template("blog/search.html", query=query, page=page, sort=sort, snippets=excerpts)


@bp.route("/feed.atom")
@reads_from_replica
def atom() -> Response:
    return _atom(services.latest_published(ATOM_ENTRIES), site_name(),
                 site_url("blog.atom"), site_url("blog.index"))


@bp.route("/tags/<name>/feed.atom")
@reads_from_replica
def tag_atom(name: str) -> Response:
    tag = services.get_tag(name) or abort(404)
    return _atom(services.latest_published(ATOM_ENTRIES, tag=tag),
                 f"#{tag.name} · {site_name()}",
                 site_url("blog.tag_atom", name=tag.name), site_url("blog.tag", name=tag.name))


@bp.route("/users/<username>/feed.atom")
@reads_from_replica
def user_atom(username: str) -> Response:
    user = _member(username)
    return _atom(services.latest_published(ATOM_ENTRIES, author=user),
                 f"{user.shown_name} · {site_name()}",
                 site_url("blog.user_atom", username=user.username),
                 site_url("blog.profile", username=user.username))


def _atom(posts: list[Post], title: str, self_url: str, alternate_url: str) -> Response:
    """An Atom feed of ``posts`` (what everyone may see; links from SITE_URL)."""
    # .xml: Jinja autoescapes it, which both keeps the XML well-formed and escapes body_html
    # as Atom's type="html" content requires.
    updated = max((post.updated_at for post in posts), default=utcnow())
    response = make_response(render_template("blog/feed.atom.xml", posts=posts, updated=updated,
                                              feed_title=title, self_url=self_url,
                                              alternate_url=alternate_url))
    response.mimetype = "application/atom+xml"
    return response


@bp.app_template_global()
def can_edit(post: Post) -> bool:
    """Whether the current user may edit or delete ``post`` (templates show the buttons)."""
    return can_edit_post(current_user, post.author_id)


@bp.app_template_global()
def post_structured_data(post: Post) -> dict[str, object]:
    """JSON-LD ``BlogPosting`` for a post's page (what search engines read)."""
    author = {"@type": "Person", "name": post.author.shown_name,
              "url": site_url("blog.profile", username=post.author.username)}
    data: dict[str, object] = {
        "@context": "https://schema.org", "@type": "BlogPosting",
        "headline": post.title[:110], "description": post.excerpt,
        "datePublished": post.published_at.isoformat() if post.published_at else None,
        "dateModified": post.updated_at.isoformat(),
        "author": author, "mainEntityOfPage": site_url("blog.post", slug=post.slug),
        "keywords": [tag.name for tag in post.tags],
        "publisher": {"@type": "Organization", "name": site_name(),
                      "url": site_url("blog.index")},
    }
    if is_stored_name(post.cover):
        data["image"] = site_url("images.serve", name=post.cover)
    return data


@bp.app_template_global()
def markdown_for(item: Media) -> str:
    """The Markdown that shows a library image in a post."""
    return media_library.markdown_for(item)


@bp.app_template_global()
def may_write() -> bool:
    """Whether the current user may write posts (the "Write" link)."""
    return can_write(current_user)


@bp.app_template_global()
def scheduled(post: Post) -> bool:
    """Whether ``post`` waits for its time (templates mark it)."""
    return services.is_scheduled(post)
