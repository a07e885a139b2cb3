"""The portal's page script in a real browser: headless Chromium (Debian's `chromium`, never a
downloaded one) driven by Playwright, against the app served on 127.0.0.1.

Time is injected on both sides: the server runs on the test's FrozenClock and the browser on
Playwright's paused clock, and `Time.advance` moves both in step, so minutes of inactivity
take milliseconds. Screenshots land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from directory.models import DirectorySession
from directory.policy import EndReason
from tests.conftest import PASSWORD, START
from tests.factories import make_user, session_rows, set_settings

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is missing: run `make install` (it is in the test extra)")
expect = playwright_api.expect

INACTIVITY = timedelta(minutes=10)
ABSOLUTE = timedelta(minutes=30)
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
WARNING = "#session-warning"


def chromium_executable() -> str | None:
    """Debian's Chromium (installed by `make install`), or the browser IDP_CHROMIUM names."""
    named = os.environ.get("IDP_CHROMIUM")
    if named:
        return named
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.fixture(scope="module")
def browser():
    executable = chromium_executable()
    if executable is None:
        pytest.skip("No Chromium found: install Debian's chromium package (`make install` does where apt-get works) or set IDP_CHROMIUM")
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=executable)
        yield launched
        launched.close()


class QuietHandler(WSGIRequestHandler):
    """No access log in the test output; errors are still logged."""

    def log_request(self, *args, **kwargs) -> None:
        pass


@pytest.fixture
def live(app, clock):
    """The app served over HTTP from a thread, with users and short timeouts."""
    set_settings(inactivity=INACTIVITY, absolute=ABSOLUTE)
    make_user("alice", now=clock.now(), display_name="Alice Example")
    make_user("root", role="admin", now=clock.now(), display_name="Ada Admin")
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=30)


class Time:
    """Moves the server's clock and the browser's together, in steps the page can follow."""

    def __init__(self, server_clock, context, *, browser_skew: timedelta = timedelta()) -> None:
        self.server_clock, self.context = server_clock, context
        self.pending = 0
        context.on("request", self._sent)
        context.on("requestfinished", self._done)
        context.on("requestfailed", self._done)
        context.clock.install(time=START + browser_skew)
        context.clock.pause_at(START + browser_skew)

    def _sent(self, _request) -> None:
        self.pending += 1

    def _done(self, _request) -> None:
        self.pending -= 1

    def advance(self, *, seconds: int, step: int = 5, each=None) -> None:
        """`seconds` later for both; `each()` runs after every step (the person's actions)."""
        while seconds > 0:
            moved, seconds = min(step, seconds), seconds - step
            self.server_clock.advance(seconds=moved)
            self.context.clock.run_for(moved * 1000)
            self.settle()
            if each is not None:
                each()
                self.settle()

    def settle(self) -> None:
        """Let the page's requests finish before time moves on (real time, at most 5 s)."""
        page = self.context.pages[0]
        give_up = time.monotonic() + 5
        while self.pending > 0 and time.monotonic() < give_up:
            page.wait_for_timeout(10)


def new_context(browser, live, clock, *, width: int = 1200, browser_skew: timedelta = timedelta()):
    """A browser profile (its own cookies) whose clock the test drives."""
    context = browser.new_context(base_url=live, viewport={"width": width, "height": 800})
    context.time = Time(clock, context, browser_skew=browser_skew)
    return context


@pytest.fixture
def context(browser, live, clock):
    context = new_context(browser, live, clock)
    yield context
    context.close()


def sign_in(page, username: str = "alice"):
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Signed in as")
    page.context.time.settle()


def save(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def the_session() -> DirectorySession:
    (row,) = session_rows()
    return row


def wiggle(page):
    """Pointer movement and nothing else: no click, no key, no page load."""
    steps = itertools.count(1)

    def move():
        n = next(steps)
        page.mouse.move(100 + n % 7 * 40, 300 + n % 5 * 30)

    return move


def test_mouse_movement_alone_keeps_the_session_alive_past_the_inactivity_timeout(context):
    page = context.new_page()
    sign_in(page)
    context.time.advance(seconds=15 * 60, step=20, each=wiggle(page))
    row = the_session()
    assert row.ended_at is None and row.last_activity_at >= START + timedelta(minutes=14)
    expect(page.locator(WARNING)).to_be_hidden()
    # The page's "Ends if inactive" follows, by the server's clock.
    expect(page.locator('time[data-deadline="inactivity"]')).to_have_text(f"{row.last_activity_at + INACTIVITY:%Y-%m-%d %H:%M:%S} UTC")
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Signed in as Alice Example")


def test_without_interaction_the_warning_shows_and_then_the_sign_in_page_gives_the_reason(context):
    page = context.new_page()
    sign_in(page)
    save(page, "portal")
    dialog = page.get_by_role("dialog", name="Are you still there?")
    context.time.advance(seconds=7 * 60 + 55)
    expect(dialog).to_be_hidden()  # 2 min 5 s left: no warning yet
    context.time.advance(seconds=5)
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("signed out in 2:00")
    expect(dialog.get_by_role("button", name="Stay signed in")).to_be_focused()
    context.time.advance(seconds=30)
    expect(dialog.get_by_role("timer")).to_have_text("1:30")
    expect(dialog.locator("[aria-live]")).to_have_text("1 minute 30 seconds left.")
    save(page, "warning")
    context.time.advance(seconds=90)
    page.wait_for_url("**/login?ended=idle_timeout&next=%2F")
    expect(page.get_by_role("status")).to_have_text("You were signed out after 10 minutes of inactivity.")
    assert the_session().end_reason == EndReason.IDLE_TIMEOUT
    save(page, "sign-in")


@pytest.mark.parametrize("skew", [timedelta(hours=-5), timedelta(days=2)], ids=["browser-5h-slow", "browser-2d-fast"])
def test_a_wrong_browser_clock_changes_nothing(browser, live, clock, skew):
    context = new_context(browser, live, clock, browser_skew=skew)
    page = context.new_page()
    sign_in(page)
    dialog = page.get_by_role("dialog", name="Are you still there?")
    context.time.advance(seconds=7 * 60 + 55)
    expect(dialog).to_be_hidden()
    context.time.advance(seconds=5)
    expect(dialog).to_contain_text("signed out in 2:00")
    context.time.advance(seconds=2 * 60)
    page.wait_for_url("**/login?ended=idle_timeout&next=%2F")
    context.close()


@pytest.mark.parametrize("answer", ["click", "Enter", "Escape"])
def test_stay_signed_in_extends_the_session(context, answer):
    page = context.new_page()
    sign_in(page)
    context.time.advance(seconds=9 * 60)
    dialog = page.get_by_role("dialog", name="Are you still there?")
    expect(dialog).to_be_visible()
    page.mouse.move(200, 200)  # moving the pointer does not answer the question
    context.time.settle()
    assert the_session().last_activity_at == START
    if answer == "click":
        dialog.get_by_role("button", name="Stay signed in").click()
    else:
        page.keyboard.press(answer)  # focus is on "Stay signed in"; Escape also means "still here"
    expect(dialog).to_be_hidden()
    context.time.settle()
    assert the_session().last_activity_at == START + timedelta(minutes=9)
    context.time.advance(seconds=5 * 60)  # past the first deadline
    assert the_session().ended_at is None
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Signed in as")


def test_the_warning_signs_out_from_the_keyboard(context):
    page = context.new_page()
    sign_in(page)
    context.time.advance(seconds=8 * 60)
    dialog = page.get_by_role("dialog", name="Are you still there?")
    expect(dialog.get_by_role("button", name="Stay signed in")).to_be_focused()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Sign out")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    assert the_session().end_reason == EndReason.SIGNED_OUT


def test_two_tabs_stay_in_step(context):
    first, second = context.new_page(), context.new_page()
    sign_in(first)
    second.goto("/account/sessions")
    context.time.settle()
    # Activity in the first tab counts for the second: neither warns at the old deadline.
    context.time.advance(seconds=9 * 60, step=30, each=wiggle(first))
    for page in (first, second):
        expect(page.locator(WARNING)).to_be_hidden()
    # Both warn together, and staying signed in from one closes the other's warning.
    context.time.advance(seconds=9 * 60)
    for page in (first, second):
        expect(page.get_by_role("dialog", name="Are you still there?")).to_be_visible()
    second.get_by_role("button", name="Stay signed in").click()
    for page in (first, second):
        expect(page.locator(WARNING)).to_be_hidden()
    # Signing out in one tab takes the other to the sign-in page with the reason.
    first.get_by_role("button", name="Sign out").click()
    expect(first.get_by_role("status")).to_have_text("You have signed out.")
    second.wait_for_url("**/login?ended=signed_out&next=%2Faccount%2Fsessions")
    expect(second.get_by_role("status")).to_have_text("You have signed out.")


def test_the_absolute_deadline_cannot_be_extended(context):
    page = context.new_page()
    sign_in(page)
    context.time.advance(seconds=27 * 60 + 55, step=20, each=wiggle(page))
    expect(page.locator(WARNING)).to_be_hidden()
    context.time.advance(seconds=5, each=wiggle(page))
    dialog = page.get_by_role("dialog", name="Your session is about to end")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("cannot be extended")
    expect(dialog.get_by_role("button", name="Stay signed in")).to_have_count(0)
    save(page, "warning-absolute")
    dialog.get_by_role("button", name="Continue").click()
    expect(dialog).to_be_hidden()
    context.time.advance(seconds=2 * 60, step=20, each=wiggle(page))
    page.wait_for_url("**/login?ended=absolute_timeout&next=%2F")
    expect(page.get_by_role("status")).to_have_text("Your session reached its time limit of 30 minutes. Please sign in again.")
    assert the_session().end_reason == EndReason.ABSOLUTE_TIMEOUT


def test_an_administrator_ending_the_session_takes_every_tab_to_the_sign_in_page(context, browser, live, clock):
    page = context.new_page()
    sign_in(page)
    context.time.advance(seconds=30)
    later = context.new_page()  # polls 30 s after the first tab, so it hears of the end first
    later.goto("/account/sessions")
    context.time.settle()
    admin = new_context(browser, live, clock, width=1400)
    admin_page = admin.new_page()
    sign_in(admin_page, "root")
    admin_page.goto("/admin/sessions")
    save(admin_page, "admin-sessions")
    row = admin_page.get_by_role("row").filter(has_text="alice")
    row.get_by_role("button", name="End this session").click()
    admin.close()
    context.time.advance(seconds=30)
    page.wait_for_url("**/login?ended=ended_by_admin&next=%2F")
    expect(page.get_by_role("status")).to_have_text("An administrator ended your session.")
    # The later tab's own check finds the cookie gone (no reason left): it keeps the first tab's.
    later.wait_for_url("**/login?ended=ended_by_admin&next=%2Faccount%2Fsessions")
    expect(later.get_by_role("status")).to_have_text("An administrator ended your session.")


def test_a_failing_server_is_asked_once_an_interval_and_the_page_recovers(context):
    page = context.new_page()
    sign_in(page)
    asked = []

    def unavailable(route):
        asked.append(route.request.url)
        route.fulfill(status=503, body="Service Unavailable")

    page.route("**/session/status", unavailable)
    context.time.advance(seconds=3 * 60)
    assert 2 <= len(asked) <= 4  # one poll a minute, not one a second
    expect(page.locator(WARNING)).to_be_hidden()
    assert page.url.endswith("/")
    page.unroute("**/session/status")
    context.time.advance(seconds=5 * 60)
    expect(page.get_by_role("dialog", name="Are you still there?")).to_be_visible()


def test_without_javascript_the_server_enforces_the_policy(browser, live, clock):
    context = browser.new_context(base_url=live, java_script_enabled=False)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Signed in as")
    clock.advance(seconds=INACTIVITY.total_seconds() - 1)
    page.goto("/account/sessions")
    expect(page.get_by_role("heading", level=1)).to_have_text("My sessions")
    clock.advance(seconds=INACTIVITY.total_seconds())
    page.goto("/account/sessions")
    expect(page.get_by_role("status")).to_have_text("You were signed out after 10 minutes of inactivity.")
    context.close()
