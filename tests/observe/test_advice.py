"""Tuning advice: every rule against hand-built PoolStats (plain dataclasses), the case with
nothing to change, "not enough data", and pool.advise() on a real SQLite pool."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import sessionpool
from sessionpool import ConfigError, PoolConfig, PoolStats
from sessionpool.observe.advice import (
    MIN_ACQUIRES,
    OVERSIZED_ELAPSED,
    Advice,
    ServerFacts,
    advise,
    measure_load,
)
from sessionpool.observe.histogram import Histogram, HistogramSnapshot

# -- building statistics by hand --------------------------------------------------------------


def histogram(*groups: tuple[int, float]) -> HistogramSnapshot:
    """A snapshot holding ``count`` values of ``seconds`` for each (count, seconds) pair."""
    recorded = Histogram()
    for count, seconds in groups:
        for _ in range(count):
            recorded.record(seconds)
    return recorded.snapshot()


def make_stats(**changes: Any) -> PoolStats:
    """A quiet, well-observed pool of max_size 10: ten minutes at 100 acquires/s, each held
    20 ms (L = 2), nobody waiting; ``changes`` override any field."""
    base = PoolStats(
        min_size=1,
        max_size=10,
        hard_cap=10,
        opened=4,
        busy=1,
        idle=3,
        opening=0,
        waiting=0,
        acquires=60_000,
        waits=0,
        handoffs=0,
        timeouts=0,
        exhausted=0,
        connections_opened=4,
        connections_closed=0,
        connect_errors=0,
        retired_idle=0,
        retired_expired=0,
        keepalive_failures=0,
        leaks_reported=0,
        reclaimed=0,
        wait_time=histogram((60_000, 0.0)),
        use_time=histogram((60_000, 0.02)),
        connect_time=histogram((4, 0.003)),
        use_time_recorded=True,
        busy_peak=4,
        busy_mean=2.0,
        elapsed=600.0,
    )
    return replace(base, **changes)


def kinds(found: list[Advice]) -> list[str]:
    return [advice.kind for advice in found]


def only(found: list[Advice], kind: str) -> Advice:
    matching = [advice for advice in found if advice.kind == kind]
    assert len(matching) == 1, f"expected one {kind!r} in {kinds(found)}"
    return matching[0]


CONFIG = PoolConfig(min_size=1, max_size=10)
POSTGRESQL = ServerFacts("PostgreSQL", "15.8", max_connections=100, reserved_connections=3)


# -- Little's law --------------------------------------------------------------------------


def test_load_uses_measured_hold_times() -> None:
    load = measure_load(make_stats())
    assert load is not None
    assert load.arrival_rate == pytest.approx(100.0)
    assert load.hold_time == pytest.approx(0.02)
    assert load.busy == pytest.approx(2.0)
    assert load.hold_measured
    assert load.needed == 3  # 2 / 0.8 = 2.5, rounded up


def test_load_without_hold_times_comes_from_the_mean_busy_count() -> None:
    stats = make_stats(use_time_recorded=False, use_time=HistogramSnapshot.empty(), busy_mean=5.0)
    load = measure_load(stats)
    assert load is not None
    assert load.busy == pytest.approx(5.0)
    assert load.hold_time == pytest.approx(5.0 / 100.0)
    assert not load.hold_measured
    assert load.needed == 7  # 5 / 0.8 = 6.25


def test_no_load_before_any_acquire() -> None:
    assert measure_load(make_stats(acquires=0, elapsed=0.0)) is None


# -- nothing to change, and not enough data ---------------------------------------------------


def test_a_well_sized_pool_gets_one_ok_with_its_numbers() -> None:
    found = advise(make_stats(), CONFIG)
    assert kinds(found) == ["ok"]
    (advice,) = found
    assert advice.severity == "info"
    assert advice.settings == {}
    assert "L = 2.00 connections" in advice.sentence
    assert "3 connections suffice" in advice.sentence
    assert "the cap is 10" in advice.sentence


def test_too_little_observed_is_not_judged() -> None:
    stats = make_stats(
        acquires=50, elapsed=5.0, wait_time=histogram((50, 0.0)), use_time=histogram((50, 0.02))
    )
    found = advise(stats, CONFIG)
    assert kinds(found) == ["not_enough_data"]
    assert f"at least {MIN_ACQUIRES} acquires" in found[0].sentence
    assert "50 acquires over 5 s" in found[0].sentence


def test_too_little_observed_is_said_beside_other_findings() -> None:
    stats = make_stats(acquires=50, elapsed=5.0, reclaimed=1)
    assert kinds(advise(stats, CONFIG)) == ["leaks", "not_enough_data"]


def test_settings_alone_against_the_server_can_be_fine() -> None:
    found = advise(None, CONFIG, POSTGRESQL)
    assert kinds(found) == ["ok"]
    assert "server" in found[0].sentence


def test_processes_must_be_a_whole_number() -> None:
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ConfigError, match="processes"):
            advise(make_stats(), CONFIG, processes=bad)  # type: ignore[arg-type]


# -- saturated and near capacity ------------------------------------------------------------


def saturated_stats(hold: float, waited: int, wait: float, **changes: Any) -> PoolStats:
    acquires = 48_000  # 80 acquires/s over 600 s
    return make_stats(
        acquires=acquires,
        waits=waited,
        busy_peak=10,
        opened=10,
        wait_time=histogram((acquires - waited, 0.0), (waited, wait)),
        use_time=histogram((acquires, hold)),
        **changes,
    )


def test_saturated_when_the_mean_load_exceeds_the_target() -> None:
    # L = 80/s x 0.12 s = 9.6 busy on average: 12 needed at 80 %.
    stats = saturated_stats(hold=0.12, waited=9_000, wait=0.08, timeouts=3)
    found = advise(stats, CONFIG)
    advice = only(found, "saturated")
    assert advice.severity == "warning"
    assert found[0] is advice
    assert advice.settings == {"max_size": 12}
    assert "9000 of 48000 acquires waited (80 ms on average" in advice.sentence
    assert "3 timed out after wait_timeout=30.0 s" in advice.sentence
    assert "needs 12 connections" in advice.sentence
    assert "near_capacity" not in kinds(found)  # one finding per question


def test_saturated_by_bursts_when_the_mean_fits() -> None:
    # L = 80/s x 0.025 s = 2 on average, yet busy hit the cap and a fifth of acquires waited.
    stats = saturated_stats(hold=0.025, waited=9_600, wait=0.04)
    advice = only(advise(stats, CONFIG), "saturated")
    assert "bursts" in advice.sentence
    # The full pool frees a connection every 25 ms / 10: a caller that waited 40 ms had 16
    # callers ahead of it, and as many more connections would have served them at once.
    assert advice.settings == {"max_size": 10 + 16}
    assert "about 16 callers queued" in advice.sentence
    assert "40 ms on average" in advice.sentence


def test_rare_long_waits_at_the_cap_are_saturation() -> None:
    stats = saturated_stats(hold=0.025, waited=960, wait=0.5)  # 2 % waited half a second
    assert stats.wait_time.quantile(0.95) < 0.001  # the 95th percentile does not see them
    advice = only(advise(stats, CONFIG), "saturated")
    assert "960 of 48000 acquires waited (500 ms on average" in advice.sentence


def test_short_waits_at_the_cap_are_not_saturation() -> None:
    stats = saturated_stats(hold=0.025, waited=100, wait=0.0004)
    assert "saturated" not in kinds(advise(stats, CONFIG))


def test_saturation_with_overflow_suggests_more_overflow() -> None:
    config = PoolConfig(min_size=1, max_size=6, max_overflow=4)  # cap 10
    stats = saturated_stats(hold=0.12, waited=9_000, wait=0.08, max_size=6)
    advice = only(advise(stats, config), "saturated")
    assert set(advice.settings) == {"max_overflow"}
    assert advice.settings["max_overflow"] + 6 > 10


def test_saturation_mentions_a_server_that_cannot_take_more() -> None:
    server = ServerFacts("PostgreSQL", max_connections=12, reserved_connections=2)
    stats = saturated_stats(hold=0.12, waited=9_000, wait=0.08)
    advice = only(advise(stats, CONFIG, server), "saturated")
    assert "shorten how long borrowers hold them" in advice.sentence


def test_near_capacity_without_queueing() -> None:
    # L = 100/s x 85 ms = 8.5 of 10: nobody waited yet, but 11 are needed at 80 %.
    stats = make_stats(use_time=histogram((60_000, 0.085)), busy_peak=9, opened=9)
    found = advise(stats, CONFIG)
    advice = only(found, "near_capacity")
    assert advice.severity == "warning"
    assert advice.settings == {"max_size": 11}
    assert "85%" in advice.sentence


# -- timeouts and connect errors -------------------------------------------------------------


def test_timeouts_below_the_cap_point_at_connects() -> None:
    stats = make_stats(
        timeouts=5,
        connect_errors=5,
        busy_peak=2,
        connect_time=histogram((4, 2.0)),
    )
    config = PoolConfig(min_size=0, max_size=10, wait_timeout=1.0)
    found = advise(stats, config)
    advice = only(found, "timeouts")
    assert advice.severity == "warning"
    assert "5 acquires timed out" in advice.sentence
    assert "below the cap of 10" in advice.sentence
    assert advice.settings["wait_timeout"] >= 4.0  # twice the slowest connect
    assert advice.settings["min_size"] == 3  # L = 2 at 80 % (more than the peak of 2)
    errors = only(found, "connect_errors")
    assert "5 of 9 connects failed" in errors.sentence


# -- slow connects --------------------------------------------------------------------------


def test_slow_connects_that_callers_wait_for() -> None:
    acquires = 60_000
    stats = make_stats(
        min_size=0,
        connect_time=histogram((40, 0.2)),
        connections_opened=40,
        retired_idle=36,
        waits=40,
        wait_time=histogram((acquires - 40, 0.0), (40, 0.18)),
    )
    config = PoolConfig(min_size=0, max_size=10, max_idle=10.0)
    advice = only(advise(stats, config), "slow_connects")
    assert advice.severity == "warning"
    assert "Callers felt them" in advice.sentence
    assert "36 connections were retired" in advice.sentence
    assert advice.settings == {"min_size": 4, "max_idle": 40.0}


def test_fast_connects_are_not_mentioned() -> None:
    stats = make_stats(connect_time=histogram((40, 0.004)), retired_idle=36)
    assert "slow_connects" not in kinds(advise(stats, CONFIG))


def test_slow_connect_measured_by_check() -> None:
    server = replace(POSTGRESQL, connect_time=0.03, round_trip=0.0003)
    advice = only(advise(None, CONFIG, server), "slow_connects")
    assert advice.severity == "info"
    assert "30 ms, 100 times a SELECT 1" in advice.sentence
    fast = replace(POSTGRESQL, connect_time=0.002, round_trip=0.0005)
    assert kinds(advise(None, CONFIG, fast)) == ["ok"]
    # An in-process open: many round trips' worth, yet far too cheap to matter.
    in_process = ServerFacts("SQLite", connect_time=0.00006, round_trip=0.000001)
    assert kinds(advise(None, CONFIG, in_process)) == ["ok"]


# -- connections dying young, and server idle limits -----------------------------------------


def test_dying_young_without_server_facts_says_how_to_find_the_limit() -> None:
    stats = make_stats(
        keepalive_failures=3,
        disconnects=4,
        closed_by_reason={"failed its keepalive check": 3, "the check before hand-out failed": 1},
    )
    advice = only(advise(stats, CONFIG), "dying_young")
    assert advice.severity == "warning"
    assert "4 were found dead" in advice.sentence
    assert "3 failed keepalive checks" in advice.sentence
    assert "1 failed the check before hand-out" in advice.sentence
    assert "sessionpool check URL" in advice.sentence
    assert advice.settings == {}


def test_dying_young_against_a_postgresql_idle_timeout() -> None:
    stats = make_stats(closed_by_reason={"reset on return failed": 2}, disconnects=2)
    server = replace(POSTGRESQL, idle_session_timeout=300.0)
    config = PoolConfig(min_size=2, max_size=10)
    found = advise(stats, config, server)
    advice = only(found, "dying_young")
    assert advice.settings == {"max_idle": 240.0, "keepalive_interval": 150.0}
    assert "idle_session_timeout" in advice.sentence
    assert "5 min" in advice.sentence
    assert "idle_limit" not in kinds(found)


def test_dying_young_with_no_server_idle_timeout_blames_what_is_in_between() -> None:
    stats = make_stats(closed_by_reason={"failed its keepalive check": 1})
    server = replace(POSTGRESQL, tcp_keepalives_idle=7200.0)
    advice = only(advise(stats, CONFIG, server), "dying_young")
    assert "firewall" in advice.sentence
    assert "2 h" in advice.sentence


def test_idle_limit_of_mariadb_before_any_death() -> None:
    server = ServerFacts("MariaDB", "10.11", max_connections=151, idle_session_timeout=60.0)
    config = PoolConfig(min_size=0, max_size=10, max_idle=120.0)
    advice = only(advise(make_stats(min_size=0), config, server), "idle_limit")
    # The check before hand-out (ping_interval) catches what the server closed: information.
    assert advice.severity == "info"
    assert advice.settings == {"max_idle": 48.0}  # no keepalive: min_size 0 keeps none open
    assert "wait_timeout" in advice.sentence
    unchecked = replace(config, ping_interval=-1)
    assert only(advise(make_stats(min_size=0), unchecked, server), "idle_limit").severity == (
        "warning"
    )
    safe = PoolConfig(min_size=1, max_size=10, max_idle=30.0, keepalive_interval=20.0)
    assert "idle_limit" not in kinds(advise(make_stats(), safe, server))


def test_idle_in_transaction_timeout_near_the_hold_times() -> None:
    server = replace(POSTGRESQL, idle_in_transaction_timeout=10.0)
    stats = make_stats(use_time=histogram((59_000, 0.02), (1_000, 8.0)), acquires=60_000)
    advice = only(advise(stats, CONFIG, server), "idle_in_transaction")
    assert advice.settings == {"leak_threshold": 5.0}
    assert "idle_in_transaction_session_timeout" in advice.sentence
    assert "idle_in_transaction" not in kinds(advise(make_stats(), CONFIG, server))


# -- leaks ------------------------------------------------------------------------------------


def test_leaks_reported_point_at_the_logged_stacks() -> None:
    config = PoolConfig(max_size=10, leak_threshold=30.0)
    advice = only(advise(make_stats(leaks_reported=2), config), "leaks")
    assert advice.severity == "warning"
    assert "2 connections were held longer than leak_threshold=30.0 s" in advice.sentence
    assert "sessionpool.pool." in advice.sentence
    assert advice.settings == {}


def test_reclaimed_connections_without_leak_tracking_suggest_a_threshold() -> None:
    advice = only(advise(make_stats(reclaimed=1), CONFIG), "leaks")
    assert "garbage-collected without being released" in advice.sentence
    # Ten times the p99 hold time (20 ms here), and at least a second.
    assert advice.settings == {"leak_threshold": 1.0}
    unmeasured = make_stats(
        reclaimed=1, use_time_recorded=False, use_time=HistogramSnapshot.empty()
    )
    assert only(advise(unmeasured, CONFIG), "leaks").settings == {"leak_threshold": 60.0}


# -- the server's connection limit ------------------------------------------------------------


def test_pools_in_many_processes_exceed_max_connections() -> None:
    config = PoolConfig(max_size=20)
    advice = only(advise(None, config, POSTGRESQL, processes=8), "server_limit")
    assert advice.severity == "warning"
    assert "20 x 8 processes = 160 connections" in advice.sentence
    assert "97 usable connections (max_connections 100 less 3 reserved)" in advice.sentence
    assert advice.settings == {"max_size": 9}  # 80 % of 97, shared by 8


def test_behind_a_transaction_pooler_the_pool_counts_client_connections() -> None:
    config = PoolConfig(max_size=20, server_pooler="transaction")
    advice = only(advise(None, config, POSTGRESQL, processes=8), "server_limit")
    assert advice.severity == "info"  # 160 > 97 is fine: they end at the pooler
    assert "20 x 8 processes = 160 connections are client connections" in advice.sentence
    assert "default_pool_size" in advice.sentence
    assert advice.settings == {}


def test_approaching_max_connections_is_information() -> None:
    advice = only(advise(None, PoolConfig(max_size=20), POSTGRESQL, processes=4), "server_limit")
    assert advice.severity == "info"
    assert "82%" in advice.sentence
    assert kinds(advise(None, PoolConfig(max_size=20), POSTGRESQL, processes=2)) == ["ok"]


def test_connections_already_open_on_the_server_count() -> None:
    server = replace(POSTGRESQL, connections=80)
    advice = only(advise(None, PoolConfig(max_size=20), server), "server_limit")
    assert "80 connections open now" in advice.sentence


def test_an_uncapped_pool_is_capped_to_the_server() -> None:
    config = PoolConfig(max_size=10, max_overflow=-1)
    advice = only(advise(None, config, POSTGRESQL), "server_limit")
    assert advice.settings == {"max_overflow": 77 - 10}


# -- oversized --------------------------------------------------------------------------------


def test_oversized_after_a_long_quiet_hour() -> None:
    stats = make_stats(
        min_size=20, opened=20, busy_peak=3, elapsed=3600.0, acquires=360_000,
        wait_time=histogram((360_000, 0.0)), use_time=histogram((360_000, 0.01)),
    )  # fmt: skip
    config = PoolConfig(min_size=20, max_size=20)
    advice = only(advise(stats, config), "oversized")
    assert advice.severity == "info"
    assert "20 connections are open but at most 3 were busy" in advice.sentence
    assert advice.settings == {"min_size": 3, "max_idle": 300.0}


def test_oversized_is_not_claimed_on_a_short_look() -> None:
    stats = make_stats(min_size=20, opened=20, busy_peak=3, elapsed=120.0, acquires=12_000)
    found = advise(stats, PoolConfig(min_size=20, max_size=20))
    assert kinds(found) == ["not_enough_data"]
    assert "too few to call the pool oversized" in found[0].sentence
    assert f"{OVERSIZED_ELAPSED / 60:g} min" in found[0].sentence


# -- ordering and plain data ------------------------------------------------------------------


def test_warnings_come_first_and_advice_is_plain_data() -> None:
    stats = make_stats(reclaimed=1)
    found = advise(stats, PoolConfig(max_size=20), POSTGRESQL, processes=4)
    assert kinds(found) == ["leaks", "server_limit"]
    assert [advice.severity for advice in found] == ["warning", "info"]
    data = found[0].as_dict()
    assert data["kind"] == "leaks" and data["settings"] == {"leak_threshold": 1.0}
    assert str(found[0]) == found[0].sentence
    with pytest.raises(TypeError):
        found[0].settings["max_size"] = 1  # type: ignore[index]


# -- pool.advise on a real pool -------------------------------------------------------------


def test_a_real_pool_too_small_for_its_threads_is_saturated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    with sessionpool.create_pool(url, max_size=2, detailed_stats=True) as pool:

        def borrow() -> None:
            for _ in range(5):
                with pool.acquire(timeout=30):
                    time.sleep(0.03)

        # Four threads share two connections, each holding it 30 ms: half of them wait
        # about that long whatever the machine's load.
        threads = [threading.Thread(target=borrow) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        stats = pool.stats()
        assert stats.busy_peak == 2 and stats.waits > 0
        advice = only(pool.advise(), "saturated")
        assert advice.severity == "warning"
        assert "busy reached its cap of 2" in advice.sentence
        assert advice.settings["max_size"] > 2


def test_pool_advise_reads_its_own_stats_and_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'advice.db'}"
    with sessionpool.create_pool(url, max_size=3, detailed_stats=True) as pool:
        for _ in range(20):
            with pool.acquire() as connection:
                connection.execute("select 1")
        found = pool.advise()
        assert kinds(found) == ["not_enough_data"]
        assert "20 acquires" in found[0].sentence
        server = ServerFacts("SQLite", max_connections=4)
        limited = pool.advise(server, processes=2)
        assert "server_limit" in kinds(limited)
        assert "3 x 2 processes = 6 connections" in only(limited, "server_limit").sentence
        with pytest.raises(ConfigError, match="processes"):
            pool.advise(processes=0)
