"""The limiter and the breaker alone: plain numbers for times, no clock, no sleep."""

from __future__ import annotations

import itertools

import pytest

from bulk_sync.flow import CLOSED, OPEN, PROBING, Breaker, HeldBack, Limiter, Permit

RTT = 0.05


def serve_round(limiter: Limiter, now: float, *, latency: float = RTT) -> float:
    """One round trip: every request of a full window answered cleanly (each answer lets
    the next request go at once, so the window stays full). Returns the new time."""
    for _ in range(limiter.window):
        limiter.on_success(sent_at=now, now=now + latency, in_flight=limiter.window)
    return now + latency


# ----------------------------------------------------------------------------- limiter


def test_a_fixed_ceiling_starts_at_the_ceiling_and_never_goes_above_it() -> None:
    limiter = Limiter(8)
    assert limiter.window == 8
    now = 0.0
    for _ in range(50):
        now = serve_round(limiter, now)
    assert limiter.window == 8


def test_an_overload_signal_shrinks_the_window_multiplicatively() -> None:
    limiter = Limiter(64)
    assert limiter.on_drop(sent_at=1.0, now=1.05)
    assert limiter.window == 57  # 64 x 0.9
    assert limiter.on_drop(sent_at=1.1, now=1.15)
    assert limiter.window == 51  # 57.6 x 0.9


def test_drops_of_requests_sent_before_the_last_decrease_count_once() -> None:
    limiter = Limiter(64)
    limiter.on_drop(sent_at=1.0, now=1.05)
    # the rest of the same round trip's overflow: sent before the decrease at 1.05
    for k in range(15):
        assert not limiter.on_drop(sent_at=1.0 + k * 0.001, now=1.06)
    assert limiter.window == 57
    assert limiter.decreases == 1


def test_after_a_drop_the_window_grows_back_fast_to_just_under_then_one_per_round_trip() -> None:
    limiter = Limiter(200, initial=100)
    limiter.on_drop(sent_at=0.0, now=0.0)  # 90
    now = 1.0
    now = serve_round(limiter, now)
    assert limiter.window == 95  # slow start back to 95% of 100 in one round trip
    for _ in range(10):
        now = serve_round(limiter, now)
    assert 104 <= limiter.window <= 105  # then about one per round trip


def test_auto_slow_starts_doubling_each_round_trip_until_the_first_drop() -> None:
    limiter = Limiter(256, initial=4)
    now = 0.0
    seen = [limiter.window]
    for _ in range(5):
        now = serve_round(limiter, now)
        seen.append(limiter.window)
    assert seen == [4, 8, 16, 32, 64, 128]
    limiter.on_drop(sent_at=now, now=now + 0.001)
    assert limiter.window == 115
    now = serve_round(limiter, now + 0.01)
    assert limiter.window == 122  # back at once to 95% of where it was refused (121.6)...
    now = serve_round(limiter, now)
    assert limiter.window == 123  # ...then additive
    assert limiter.widest == 128  # the widest window of the run, for the summary


def test_the_widest_window_is_kept_when_the_window_narrows_in_the_tail() -> None:
    limiter = Limiter(8)
    assert limiter.widest == 8
    limiter.on_drop(sent_at=1.0, now=1.05, in_flight=1)  # a drop with one request left out
    assert limiter.window == 1
    assert (limiter.widest, limiter.decreases) == (8, 1)


def test_the_window_never_goes_below_the_minimum() -> None:
    limiter = Limiter(8)
    for k in range(100):
        limiter.on_drop(sent_at=float(k), now=k + 0.5)
    assert limiter.window == 1
    assert limiter.at_minimum


def test_a_window_that_is_not_full_does_not_grow() -> None:
    limiter = Limiter(256, initial=16)
    for k in range(1000):
        limiter.on_success(sent_at=k * 0.1, now=k * 0.1 + RTT, in_flight=15)
    assert limiter.window == 16
    limiter.on_success(sent_at=1000.0, now=1000.0 + RTT, in_flight=16)
    assert limiter.window == 17  # slow start: full, so it grows


def test_without_probing_the_window_grows_back_only_to_just_under_the_last_drop() -> None:
    limiter = Limiter(256, initial=16)
    assert limiter.on_success(sent_at=0.0, now=RTT, in_flight=16, may_grow=False)
    assert limiter.window == 17  # nothing refused yet: nothing known, so slow start goes on
    limiter = Limiter(256, initial=50)
    limiter.on_drop(sent_at=0.0, now=0.001)  # refused at 50: 45 now
    now = 1.0
    for _ in range(20):
        for _ in range(limiter.window):
            limiter.on_success(sent_at=now, now=now + RTT, in_flight=limiter.window, may_grow=False)
        now += RTT
    assert limiter.window == 49


def test_a_drop_brings_the_window_down_to_what_is_still_on_the_wire() -> None:
    limiter = Limiter(128)
    # 80 fast 429s of one burst: the first shrinks by 10%, the others only clamp
    assert limiter.on_drop(sent_at=0.0, now=0.001, in_flight=127)
    assert limiter.window == 115
    for left in range(126, 47, -1):
        limiter.on_drop(sent_at=0.0, now=0.001, in_flight=left)
    assert limiter.window == 48
    assert not limiter.on_drop(sent_at=0.0, now=0.002, in_flight=100)  # never raises it


def test_growth_stops_while_answers_are_much_slower_than_the_baseline() -> None:
    limiter = Limiter(256, initial=32)
    limiter.on_drop(sent_at=0.0, now=0.0)  # additive mode: window 28
    now = 1.0
    for _ in range(10):
        now = serve_round(limiter, now, latency=0.05)
    grown = limiter.window
    assert grown == 40  # 28.8, at once 30.4 (95% of 32), then +1 a round trip
    for _ in range(20):  # the server starts queueing: 3x slower
        now = serve_round(limiter, now, latency=0.15)
    assert limiter.window <= grown + 2  # held, once the smoothed latency caught up
    held = limiter.window
    for _ in range(30):  # after the baseline period the slow answers are the new normal
        now = serve_round(limiter, now + 1.0, latency=0.15)
    assert limiter.window > held


def test_a_restart_after_an_outage_slow_starts_back_to_the_window_before() -> None:
    limiter = Limiter(256, initial=48)
    limiter.on_drop(sent_at=0.0, now=0.0)
    before = limiter.window  # 43
    limiter.restart(now=100.0)
    assert limiter.window == 1
    assert not limiter.on_drop(sent_at=99.0, now=100.5)  # a stale answer from before
    now = 101.0
    seen = []
    for _ in range(7):
        now = serve_round(limiter, now)
        seen.append(limiter.window)
    assert seen == [2, 4, 8, 16, 32, before, before + 1]  # then additive again


def test_limiter_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="minimum <= ceiling"):
        Limiter(0)
    with pytest.raises(ValueError, match="decrease"):
        Limiter(8, decrease=1.0)


# ----------------------------------------------------------------------------- breaker


def test_the_breaker_opens_after_threshold_failures_in_a_row() -> None:
    breaker = Breaker(threshold=5, first_probe=1.0)
    for k in range(4):
        assert breaker.on_failure(10.0 + k) is None
        assert breaker.permit(10.0 + k) is Permit.GO
    change = breaker.on_failure(14.0, error="HTTP 503")
    assert change is not None
    assert change.state == OPEN
    assert "5 failures in a row" in change.reason
    assert breaker.unavailable_since == 10.0  # when the streak began
    assert breaker.permit(14.5) is Permit.WAIT
    assert breaker.next_try_at == 15.0


def test_any_answer_that_shows_the_api_is_up_ends_the_streak() -> None:
    breaker = Breaker(threshold=3)
    for _ in range(10):
        breaker.on_failure(1.0)
        breaker.on_failure(1.0)
        breaker.on_success(1.0)
    assert breaker.state == CLOSED


def test_one_probe_at_a_time_at_growing_intervals_up_to_the_maximum() -> None:
    breaker = Breaker(threshold=1, first_probe=1.0, max_probe=10.0)
    breaker.on_failure(0.0)
    tries = []
    now = 0.0
    for _ in range(7):
        assert breaker.next_try_at is not None
        now = breaker.next_try_at
        tries.append(now)
        assert breaker.permit(now) is Permit.PROBE
        assert breaker.state == PROBING
        assert breaker.permit(now) is Permit.WAIT  # only one probe
        breaker.on_failure(now + 0.01, probe=True)
        now += 0.01
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(tries)]
    assert gaps == [2.01, 4.01, 8.01, 10.01, 10.01, 10.01]
    assert breaker.unavailable_for(now) == pytest.approx(now)


def test_a_successful_probe_closes_the_breaker_and_resets_the_interval() -> None:
    breaker = Breaker(threshold=1, first_probe=1.0)
    breaker.on_failure(0.0)
    assert breaker.permit(1.0) is Permit.PROBE
    breaker.on_failure(1.0, probe=True)  # next in 2 s
    assert breaker.permit(3.0) is Permit.PROBE
    change = breaker.on_success(3.1, probe=True)
    assert change is not None
    assert change.state == CLOSED
    assert breaker.permit(3.1) is Permit.GO
    assert breaker.unavailable_since is None
    breaker.on_failure(5.0)
    assert breaker.next_try_at == 6.0  # back to the first interval


def test_a_retry_after_on_a_failure_lengthens_the_wait_for_the_probe() -> None:
    breaker = Breaker(threshold=1, first_probe=1.0)
    breaker.on_failure(0.0, retry_after=30.0)
    assert breaker.next_try_at == 30.0


def test_late_failures_of_requests_sent_before_the_breaker_opened_change_nothing() -> None:
    breaker = Breaker(threshold=2, first_probe=1.0)
    breaker.on_failure(0.0)
    breaker.on_failure(0.0)
    assert breaker.on_failure(0.5) is None
    assert breaker.next_try_at == 1.0
    assert breaker.permit(1.0) is Permit.PROBE
    assert breaker.on_failure(1.2) is None  # not the probe
    assert breaker.state == PROBING


def test_a_late_success_while_open_closes_the_breaker() -> None:
    breaker = Breaker(threshold=1)
    breaker.on_failure(0.0)
    change = breaker.on_success(0.3)
    assert change is not None
    assert change.state == CLOSED


def test_failures_count_in_a_row_by_when_requests_were_sent() -> None:
    breaker = Breaker(threshold=3)
    breaker.on_failure(1.00, sent_at=1.00)  # the first request sent after the API died
    # answers to requests sent before it come in late, successful: older news
    assert breaker.on_success(1.02, sent_at=0.97) is None
    breaker.on_failure(1.03, sent_at=1.01)
    breaker.on_success(1.04, sent_at=0.99)
    change = breaker.on_failure(1.05, sent_at=1.02)
    assert change is not None
    assert change.state == OPEN
    assert breaker.on_success(1.06, sent_at=0.98) is None  # does not close it either
    assert breaker.state == OPEN
    assert breaker.permit(2.1) is Permit.PROBE
    assert breaker.on_success(2.2, sent_at=2.1, probe=True) is not None  # a probe counts


def test_a_success_sent_after_the_first_failure_breaks_the_row() -> None:
    breaker = Breaker(threshold=3)
    breaker.on_failure(1.0, sent_at=1.0)
    breaker.on_failure(1.1, sent_at=1.1)
    breaker.on_success(1.2, sent_at=1.05)
    breaker.on_failure(1.3, sent_at=1.3)
    assert breaker.state == CLOSED


def test_an_abandoned_probe_lets_another_request_probe_at_once() -> None:
    breaker = Breaker(threshold=1)
    breaker.on_failure(0.0)
    assert breaker.permit(1.0) is Permit.PROBE
    breaker.abandon_probe(1.5)
    assert breaker.permit(1.5) is Permit.PROBE


def test_held_back_time_counts_overlapping_pauses_and_outages_once() -> None:
    held = HeldBack()
    held.add(10, 11)  # a Retry-After pause
    held.add(10.5, 12)  # another, overlapping
    held.add(20, 25)  # a pause set at 20, still going at 22
    assert held.seconds(22) == pytest.approx(2 + 2)
    # an outage since 21 (the breaker open): 21-22 is already a pause
    assert held.seconds(22, since=21) == pytest.approx(2 + 2)
    assert held.seconds(30, since=21) == pytest.approx(2 + 10)  # 20-30
    held.add(21, 30)  # the outage ended at 30
    held.add(5, 10.2)  # an outage that began before the first pause, recorded late
    assert held.seconds(30) == pytest.approx(7 + 10)
    assert held.seconds(40) == pytest.approx(7 + 10)
