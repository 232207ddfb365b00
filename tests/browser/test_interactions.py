"""What a person does with the pages: confirm a destructive action, read form errors, scroll a
code block with the keyboard."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Site


def test_cancelling_an_order_asks_first(open_page: Any, site: Site) -> None:
    watch = open_page("member", 390)
    page = watch.page
    page.goto(f"{site.url}/shop/orders/{site.member_order_number}")
    yes = page.get_by_role("button", name="Yes, cancel the order")
    assert not yes.is_visible()  # one click on "Cancel this order" only asks
    page.get_by_text("Cancel this order", exact=True).click()
    assert "cannot be undone" in page.locator("details.confirm").inner_text()
    assert (page.locator("main .status").text_content() or "").lower() == "pending"
    with page.expect_navigation():
        yes.click()
    assert (page.locator("main .status").text_content() or "").lower() == "cancelled"
    assert not watch.problems, watch.problems


def test_form_errors_are_tied_to_their_inputs(open_page: Any, site: Site) -> None:
    watch = open_page("visitor", 320)
    page = watch.page
    page.goto(f"{site.url}/auth/register")
    page.fill("input[name=username]", "x")
    page.fill("input[name=email]", "not an email")
    with page.expect_navigation():
        page.locator("main button[type=submit]").click()
    invalid = page.locator("main [aria-invalid=true]")
    assert invalid.count() >= 2
    for index in range(invalid.count()):
        described = invalid.nth(index).get_attribute("aria-describedby")
        assert described, invalid.nth(index).get_attribute("name")
        message = page.locator(f"#{described}")
        assert message.is_visible() and message.inner_text().strip()
    assert not watch.axe()


def test_a_wide_code_block_scrolls_by_keyboard(open_page: Any, site: Site) -> None:
    page = open_page("visitor", 320).page
    page.goto(f"{site.url}/posts/{site.post_slug}")
    block = page.locator(".post-body pre")
    assert block.evaluate("e => e.scrollWidth > e.clientWidth")  # it does need scrolling
    for _ in range(40):  # Tab through the page until the code block has the focus
        page.keyboard.press("Tab")
        if block.evaluate("e => e === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reaches the code block")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("End")
    # Browsers may scroll smoothly: wait for it rather than read the position at once.
    page.wait_for_function("() => document.querySelector('.post-body pre').scrollLeft > 0",
                           timeout=5000)


def test_figures_in_admin_tables_are_right_aligned(open_page: Any, site: Site) -> None:
    page = open_page("admin", 1280).page
    page.goto(f"{site.url}/admin/orders")
    cells = page.locator("table.data td.num, table.data th.num")
    assert cells.count() > 1
    aligns = cells.evaluate_all("cells => cells.map(c => getComputedStyle(c).textAlign)")
    assert set(aligns) == {"right"}, aligns
