"""The soak's warm-up sample: after 5 % of the requests and WARMUP_SECONDS of load both, never the last."""

from bench.soak import WARMUP_SECONDS, Sample, SoakResult, checkpoints


def result(total: int, elapsed_at: dict[int, float]) -> SoakResult:
    warmup, _ = checkpoints(total)
    samples = [Sample(requests, elapsed, {}) for requests, elapsed in sorted(elapsed_at.items())]
    return SoakResult(total, 32, warmup, [], samples, None)


def test_memory_is_sampled_at_every_twentieth_from_the_least_warm_up_on():
    warmup, marks = checkpoints(100_000)
    assert warmup == 5_000
    assert marks == [5_000 * twentieth for twentieth in range(1, 21)]


def test_a_fast_box_warms_up_for_the_seconds_not_only_the_requests():
    fast = result(100_000, {0: 0.0, 5_000: 0.9, 10_000: 1.9, 15_000: 2.8, 20_000: 3.8, 100_000: 21.5})
    warm = fast.warm_sample()
    assert warm is not None and (warm.requests, warm.elapsed) == (20_000, 3.8)
    assert warm.elapsed >= WARMUP_SECONDS


def test_a_slow_box_warms_up_after_its_requests():
    slow = result(100_000, {0: 0.0, 5_000: 3.5, 10_000: 7.0, 100_000: 70.0})
    assert slow.warm_sample() == slow.samples[1]


def test_a_soak_too_short_for_the_seconds_warms_up_after_its_requests_never_at_its_end():
    short = result(20_000, {0: 0.0, 1_000: 0.2, 2_000: 0.4, 20_000: 3.9})
    assert short.warm_sample() == short.samples[1]
