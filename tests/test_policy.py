"""The time rules as tables of instants: one second before, at, and after each deadline."""

from datetime import UTC, datetime, timedelta

import pytest

from directory import policy
from directory.policy import EndReason, Lifetime, OnLimit

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)
DEFAULT = Lifetime(inactivity=timedelta(minutes=30), absolute=timedelta(hours=8))


@pytest.mark.parametrize(
    "elapsed, expected",
    [
        (timedelta(minutes=30) - S, None),
        (timedelta(minutes=30), EndReason.IDLE_TIMEOUT),
        (timedelta(minutes=30) + S, EndReason.IDLE_TIMEOUT),
    ],
)
def test_inactivity_ends_a_session_exactly_at_its_deadline(elapsed, expected):
    assert policy.evaluate(T0, T0, DEFAULT, T0 + elapsed) is expected


def test_activity_moves_the_inactivity_deadline():
    active_at = T0 + timedelta(minutes=29)
    assert policy.evaluate(T0, active_at, DEFAULT, active_at + timedelta(minutes=30) - S) is None
    assert policy.evaluate(T0, active_at, DEFAULT, active_at + timedelta(minutes=30)) is EndReason.IDLE_TIMEOUT


@pytest.mark.parametrize(
    "elapsed, expected",
    [
        (timedelta(hours=8) - S, None),
        (timedelta(hours=8), EndReason.ABSOLUTE_TIMEOUT),
        (timedelta(hours=8) + S, EndReason.ABSOLUTE_TIMEOUT),
    ],
)
def test_the_absolute_timeout_ends_a_session_whatever_its_activity(elapsed, expected):
    last_activity = T0 + elapsed - S  # active one second ago, every time
    assert policy.evaluate(T0, last_activity, DEFAULT, T0 + elapsed) is expected


def test_with_inactivity_off_only_the_absolute_deadline_counts():
    lifetime = Lifetime(inactivity=None, absolute=timedelta(hours=8))
    assert policy.idle_deadline(T0, lifetime) is None
    assert policy.evaluate(T0, T0, lifetime, T0 + timedelta(hours=8) - S) is None
    assert policy.evaluate(T0, T0, lifetime, T0 + timedelta(hours=8)) is EndReason.ABSOLUTE_TIMEOUT


def test_expiry_names_the_absolute_limit_when_both_deadlines_coincide():
    lifetime = Lifetime(inactivity=timedelta(hours=1), absolute=timedelta(hours=8))
    assert policy.expiry(T0, T0 + timedelta(hours=7), lifetime) == (T0 + timedelta(hours=8), EndReason.ABSOLUTE_TIMEOUT)


def test_expiry_is_the_earlier_deadline():
    assert policy.expiry(T0, T0, DEFAULT) == (T0 + timedelta(minutes=30), EndReason.IDLE_TIMEOUT)


@pytest.mark.parametrize(
    "inactivity, interval",
    [
        (timedelta(minutes=30), timedelta(seconds=60)),
        (timedelta(minutes=10), timedelta(seconds=60)),
        (timedelta(minutes=5), timedelta(seconds=30)),
        (timedelta(minutes=1), timedelta(seconds=6)),
        (None, timedelta(seconds=60)),
    ],
)
def test_activity_is_written_at_most_once_per_tenth_of_the_timeout_capped_at_a_minute(inactivity, interval):
    lifetime = Lifetime(inactivity=inactivity, absolute=timedelta(hours=8))
    assert policy.touch_interval(lifetime) == interval
    assert not policy.should_touch(T0, lifetime, T0 + interval - S)
    assert policy.should_touch(T0, lifetime, T0 + interval)


@pytest.mark.parametrize(
    "inactivity, absolute, ends_by, lead",
    [
        (timedelta(minutes=30), timedelta(hours=8), EndReason.IDLE_TIMEOUT, timedelta(minutes=2)),
        (timedelta(minutes=8), timedelta(hours=8), EndReason.IDLE_TIMEOUT, timedelta(minutes=2)),
        (timedelta(minutes=7), timedelta(hours=8), EndReason.IDLE_TIMEOUT, timedelta(seconds=105)),
        (timedelta(minutes=1), timedelta(hours=8), EndReason.IDLE_TIMEOUT, timedelta(seconds=15)),
        (timedelta(minutes=1), timedelta(minutes=5), EndReason.ABSOLUTE_TIMEOUT, timedelta(seconds=75)),
        (timedelta(minutes=30), timedelta(hours=8), EndReason.ABSOLUTE_TIMEOUT, timedelta(minutes=2)),
        (None, timedelta(minutes=6), EndReason.ABSOLUTE_TIMEOUT, timedelta(seconds=90)),
    ],
)
def test_the_warning_shows_two_minutes_or_a_quarter_of_the_deciding_timeout_before_the_end(inactivity, absolute, ends_by, lead):
    assert policy.warning_lead(Lifetime(inactivity=inactivity, absolute=absolute), ends_by) == lead


@pytest.mark.parametrize(
    "active, limit, on_limit, allowed, evicted",
    [
        (["a", "b"], None, OnLimit.END_OLDEST, True, ()),
        (["a", "b"], 3, OnLimit.END_OLDEST, True, ()),
        (["a", "b"], 2, OnLimit.END_OLDEST, True, ("a",)),
        (["a", "b", "c"], 1, OnLimit.END_OLDEST, True, ("a", "b", "c")),
        (["a", "b"], 3, OnLimit.REFUSE, True, ()),
        (["a", "b"], 2, OnLimit.REFUSE, False, ()),
        ([], 1, OnLimit.REFUSE, True, ()),
    ],
)
def test_admission_counts_the_new_session_against_the_limit(active, limit, on_limit, allowed, evicted):
    assert policy.admit(active, limit, on_limit) == policy.Admission(allowed, evicted)


def test_a_persistent_cookie_expires_at_the_absolute_deadline_and_a_browser_cookie_never():
    assert policy.cookie_expires(True, T0, DEFAULT) == T0 + timedelta(hours=8)
    assert policy.cookie_expires(False, T0, DEFAULT) is None


def test_ended_sessions_are_purged_once_the_retention_period_has_passed():
    assert policy.purge_cutoff(T0, timedelta(days=30)) == T0 - timedelta(days=30)


@pytest.mark.parametrize(
    "authenticated_at, kwargs, expected",
    [
        (None, {}, policy.LoginReason.NO_SESSION),
        (T0, {}, None),
        (T0, {"fresh": True}, policy.LoginReason.PROMPT_LOGIN),
        (T0, {"fresh": True, "requested_at": T0}, None),
        (T0, {"fresh": True, "requested_at": T0 + S}, policy.LoginReason.PROMPT_LOGIN),
        (T0, {"max_age": 0}, policy.LoginReason.MAX_AGE),
        (T0 - timedelta(seconds=60), {"max_age": 60}, None),
        (T0 - timedelta(seconds=61), {"max_age": 60}, policy.LoginReason.MAX_AGE),
        (T0 - timedelta(seconds=61), {"max_age": 60, "requested_at": T0 - timedelta(seconds=62)}, None),
    ],
)
def test_an_application_sign_in_asks_for_the_password_only_when_its_rules_demand_it(authenticated_at, kwargs, expected):
    assert policy.needs_login(authenticated_at, T0, **kwargs) is expected


@pytest.mark.parametrize(
    "attempts, jitter, delay",
    [
        (1, 1.0, timedelta(seconds=10)),
        (2, 1.0, timedelta(seconds=20)),
        (3, 0.5, timedelta(seconds=20)),
        (9, 1.0, timedelta(seconds=2560)),
        (10, 1.0, timedelta(hours=1)),
        (30, 1.0, timedelta(hours=1)),
    ],
)
def test_failed_deliveries_back_off_exponentially_with_jitter_up_to_an_hour(attempts, jitter, delay):
    assert policy.retry_delay(attempts, jitter) == delay


def test_jitter_outside_its_range_is_a_programming_error():
    with pytest.raises(ValueError):
        policy.retry_delay(1, 1.5)


def test_a_delivery_is_abandoned_exactly_when_its_window_has_passed():
    window = timedelta(hours=24)
    assert not policy.delivery_abandoned(T0, T0 + window - S, window)
    assert policy.delivery_abandoned(T0, T0 + window, window)
