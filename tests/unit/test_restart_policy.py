"""`notifier run` restarts a dying child with backoff and never gives up (issue 10: a Redis restart can
make a worker exit several times in a row; the supervisor used to stop after five exits in a minute)."""

from __future__ import annotations

from notifier.cli.run import RestartPolicy


def test_first_exit_restarts_at_once_then_backoff_grows_to_the_cap_and_never_stops():
    policy = RestartPolicy(base=1.0, cap=60.0, healthy_after=60.0, rand=lambda: 1.0)  # the top of each range
    delays = [policy.delay("worker", started_at=0.0, exited_at=1.0) for _ in range(12)]
    assert delays[0] == 0.0
    assert delays[1:8] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    assert delays[8:] == [60.0] * 4  # the twelfth exit in a row still gets a restart
    assert policy.failures("worker") == 12


def test_jitter_stays_between_half_the_ceiling_and_the_ceiling():
    low = RestartPolicy(base=1.0, cap=60.0, rand=lambda: 0.0)
    delays = [low.delay("beat", 0.0, 1.0) for _ in range(5)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0]


def test_a_child_that_ran_long_enough_starts_the_count_afresh():
    policy = RestartPolicy(base=1.0, cap=60.0, healthy_after=60.0, rand=lambda: 1.0)
    for _ in range(4):
        policy.delay("api", 0.0, 1.0)
    assert policy.delay("api", started_at=100.0, exited_at=161.0) == 0.0  # it had recovered
    assert policy.failures("api") == 1


def test_children_are_counted_apart():
    policy = RestartPolicy(rand=lambda: 1.0)
    policy.delay("worker", 0.0, 1.0)
    policy.delay("worker", 0.0, 1.0)
    assert policy.delay("beat", 0.0, 1.0) == 0.0
