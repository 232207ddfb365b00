"""Every kind of page, as a visitor, a member and an admin, at phone and desktop widths:
nothing scrolls sideways, the navigation can be reached, nothing fails in the console or the
network, and axe-core finds no serious or critical accessibility problem."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import WIDTHS, Site

VISITOR_PAGES = ["/", "/posts/{post_slug}", "/tags/code", "/search?q=the", "/users/reader", "/shop/",
                 "/shop/products/{product_slug}", "/shop/cart", "/auth/login", "/auth/register",
                 "/auth/reset", "/auth/reset/{reset_token}", "/pages/about", "/newsletter/subscribe",
                 "/no-such-page"]
MEMBER_PAGES = ["/", "/posts/{post_slug}", "/feed", "/posts/new", "/posts/{post_slug}/edit",
                "/users/reader", "/auth/password", "/auth/profile", "/shop/cart", "/shop/checkout",
                "/shop/orders", "/shop/orders/{member_order_number}", "/posts/media"]
ADMIN_PAGES = ["/admin/", "/admin/products", "/admin/products/new", "/admin/products/{product_id}/edit",
               "/admin/orders", "/admin/orders/{order_number}", "/admin/users", "/admin/comments",
               "/admin/posts", "/admin/discounts", "/admin/discounts/new", "/admin/shipping",
               "/admin/shipping/new", "/admin/audit", "/admin/emails", "/admin/emails/{message_id}",
               "/admin/pages", "/admin/pages/new", "/admin/settings", "/admin/orders/{order_number}/refund",
               "/admin/newsletter", "/posts/{post_slug}"]
PAGES = ([("visitor", path) for path in VISITOR_PAGES] + [("member", path) for path in MEMBER_PAGES]
         + [("admin", path) for path in ADMIN_PAGES])
EXPECTED_STATUS = {"/no-such-page": 404}

OVERFLOW = """() => {
    const width = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll('body *')].filter(e => {
        const r = e.getBoundingClientRect();
        return r.width > 0 && (r.right > width + 1 || r.left < -1) && !e.closest('.scroll, pre, .skip');
    }).slice(0, 5).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')
                            + ' ' + Math.round(e.getBoundingClientRect().right));
    return {scroll: document.documentElement.scrollWidth, width, wide};
}"""


def check_page(watch: Any, site: Site, role: str, path: str, width: int) -> None:
    """Load ``path`` and assert what every page owes every reader."""
    url = site.url + path.format(**vars(site))
    response = watch.page.goto(url)
    expected = EXPECTED_STATUS.get(path, 200)
    assert response.status == expected, (url, response.status)
    if expected != 200:  # the error itself is what the page is about
        watch.problems = [p for p in watch.problems if str(expected) not in p]

    overflow = watch.page.evaluate(OVERFLOW)
    assert overflow["scroll"] <= overflow["width"], f"{path} at {width}px scrolls sideways: {overflow}"

    nav = watch.page.locator("header nav")
    menu = watch.page.locator("header label.nav-toggle-label")
    if menu.is_visible():
        assert width < 800, "the menu button is for phones"
        assert not nav.get_by_role("link", name="Shop", exact=True).is_visible()
        menu.click()
    for name in ("Blog", "Shop", "Cart") + (("Log in",) if role == "visitor" else ("Orders",)):
        link = nav.get_by_role("link", name=name, exact=True)
        assert link.is_visible(), f"{name!r} is not reachable in the navigation of {path} at {width}px"
        box = link.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, (name, box)
    overflow = watch.page.evaluate(OVERFLOW)
    assert overflow["scroll"] <= overflow["width"], f"{path} at {width}px, menu open: {overflow}"

    violations = watch.axe()
    assert not violations, f"axe on {path} at {width}px: {violations}"
    assert not watch.problems, watch.problems


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("role", "path"), PAGES)
def test_page(open_page: Any, site: Site, role: str, path: str, width: int) -> None:
    check_page(open_page(role, width), site, role, path, width)
