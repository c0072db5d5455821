"""The restart policy as pure logic."""

from __future__ import annotations

from supervisor.policy import RETRY_FOREVER, RestartPolicy, RestartTracker

DEFAULTS = RestartPolicy()


def test_defaults_are_designs():
    assert DEFAULTS == RestartPolicy(
        start_secs=1, start_retries=5, backoff_initial=1, backoff_max=60
    )


def test_failed_starts_double_the_delay_up_to_the_cap_then_fatal():
    tracker = RestartTracker(RestartPolicy(start_retries=8, backoff_initial=1, backoff_max=10))
    delays = []
    for _ in range(8):
        tracker.record_exit(now=100, failed_start=True)
        delays.append(tracker.delay())
        assert not tracker.fatal
    assert delays == [1, 2, 4, 8, 10, 10, 10, 10]
    tracker.record_exit(now=100, failed_start=True)
    assert tracker.fatal, "start_retries + 1 failed starts make it FATAL"
    assert not tracker.may_start(10_000)


def test_the_first_start_is_not_a_retry():
    tracker = RestartTracker(RestartPolicy(start_retries=0))
    tracker.record_exit(now=0, failed_start=True)
    assert tracker.fatal, "start_retries = 0: one start, no retry"


def test_a_start_waits_for_its_backoff():
    tracker = RestartTracker(DEFAULTS)
    tracker.record_exit(now=50, failed_start=True)
    assert not tracker.may_start(50.5)
    assert tracker.may_start(51)


def test_defaults_allow_at_most_six_starts_in_fifteen_seconds():
    tracker = RestartTracker(DEFAULTS)
    now, starts = 0.0, 0
    while now <= 15 and not tracker.fatal:
        starts += 1
        tracker.record_exit(now, failed_start=True)
        now = tracker.not_before
    assert starts <= 6


def test_a_worker_that_lived_past_start_secs_resets_count_and_delay():
    tracker = RestartTracker(DEFAULTS)
    for _ in range(3):
        tracker.record_exit(now=0, failed_start=True)
    tracker.record_exit(now=10, failed_start=False)
    assert tracker.in_a_row == 0
    assert tracker.delay() == 0
    assert tracker.may_start(10)


def test_clear_forgives_fatal():
    tracker = RestartTracker(RestartPolicy(start_retries=0))
    tracker.record_exit(now=0, failed_start=True)
    tracker.clear()
    assert not tracker.fatal
    assert tracker.may_start(0)


def test_retry_forever_is_never_fatal_and_its_backoff_stays_capped():
    tracker = RestartTracker(
        RestartPolicy(start_retries=RETRY_FOREVER, backoff_initial=0.5, backoff_max=30)
    )
    now, delays = 0.0, []
    for _ in range(1000):
        tracker.record_exit(now, failed_start=True)
        assert not tracker.fatal and tracker.may_start(tracker.not_before)
        delays.append(tracker.not_before - now)
        now = tracker.not_before
    assert delays[:8] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert set(delays[6:]) == {30}, "capped at backoff_max, however many failed starts"
    assert tracker.in_a_row == 1000


def test_retry_forever_still_resets_once_a_worker_settles():
    tracker = RestartTracker(RestartPolicy(start_retries=RETRY_FOREVER))
    for _ in range(20):
        tracker.record_exit(now=0, failed_start=True)
    tracker.record_exit(now=100, failed_start=False)
    assert (tracker.in_a_row, tracker.delay(), tracker.fatal) == (0, 0, False)


def test_clear_forgives_fatal_for_start_and_restart():
    tracker = RestartTracker(RestartPolicy(start_retries=0))
    tracker.record_exit(now=0, failed_start=True)
    assert tracker.fatal
    tracker.clear()
    assert tracker.may_start(0) and tracker.in_a_row == 0
