"""sr_ops.bench.timing's interleaved rounds, on a fake clock (no real timing here)."""
import statistics

from sr_ops.bench import timing


def test_interleaved_rounds_rotate_and_share_the_drift(monkeypatch):
    clock = [0.0]
    order = []
    drift = [1.0, 3.0, 1.0, 2.0, 1.0, 5.0, 1.0]  # the machine's speed, round by round
    base = {"a": 1.0, "b": 2.0, "c": 4.0}

    def make(name):
        def fn():
            order.append(name)
            rnd = max(0, (len(order) - 1 - len(base)) // len(base))  # the first len(base) calls warm up
            clock[0] += base[name] * drift[min(rnd, len(drift) - 1)]
        return fn

    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    medians = timing.interleaved_median_seconds({n: make(n) for n in base}, repeats=len(drift), warmup=1,
                                                max_seconds=1e9)
    assert order[:3] == ["a", "b", "c"]  # warm-up
    rounds = [order[3 + 3 * r: 6 + 3 * r] for r in range(len(drift))]
    assert rounds[:3] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    # every callable saw every round's speed, so the ratios come out exact
    for name, cost in base.items():
        assert medians[name] == cost * statistics.median(drift)
    assert medians["c"] / medians["a"] == 4.0


def test_interleaved_rounds_stop_at_the_budget(monkeypatch):
    clock = [0.0]

    def slow():
        clock[0] += 10.0

    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    calls = []
    medians = timing.interleaved_median_seconds({"x": lambda: (calls.append(1), slow())}, repeats=50, warmup=0,
                                                max_seconds=25.0)
    assert len(calls) == 3 and medians["x"] == 10.0  # stops after the round that passed 25 s
