"""cnclip_edu.course.timing: laps add up to the run, the median run is kept, fns are interleaved."""
import itertools

import numpy as np
import pytest

from cnclip_edu.course.timing import Laps, best_of, clock_cost, per_item_medians, step_breakdown


class FakeClock:
    """A clock the test advances by hand: `tick(s)` is work costing s seconds."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


def test_laps_sum_to_the_run_and_repeat_names_add_up():
    clock = FakeClock()
    lap = Laps(clock)
    clock.tick(1.0)
    lap("a")
    clock.tick(2.0)
    lap("b")
    clock.tick(0.5)
    lap("a")
    assert lap.times == {"a": 1.5, "b": 2.0}
    assert lap.total == 3.5
    lap.start()
    assert lap.times == {}


def test_step_breakdown_keeps_each_items_median_run_and_steps_sum_to_total():
    clock = FakeClock()
    noise = itertools.cycle([0.0, 10.0, 0.0, 0.0, 0.0])     # one run in five is interrupted

    def timed(item, lap):
        clock.tick(item)
        lap("first")
        clock.tick(2 * item + next(noise))
        lap("second")

    def whole(item):
        clock.tick(3 * item)

    result = step_breakdown(timed, whole, items=[1.0, 2.0], repeat=5, clock=clock)
    assert result.steps == pytest.approx({"first": 1.5, "second": 3.0})   # the interrupted run is dropped
    assert result.total == pytest.approx(sum(result.steps.values()))
    assert result.whole == pytest.approx(4.5)
    assert (result.n_items, result.repeat) == (2, 5)


def test_step_breakdown_alternates_which_goes_first():
    order = []
    step_breakdown(lambda item, lap: order.append("timed"), lambda item: order.append("whole"), items=[0], repeat=2)
    assert order == ["timed", "whole", "whole", "timed"]


def test_per_item_medians_interleaves_and_takes_medians():
    clock = FakeClock()
    order = []
    spikes = itertools.cycle([0.0, 0.0, 0.0, 0.0, 0.0, 100.0])   # one spike per item, on b

    def make(name, cost):
        def fn(item):
            order.append(name)
            clock.tick(cost * item + next(spikes))
        return fn

    out = per_item_medians({"a": make("a", 1.0), "b": make("b", 2.0)}, items=[1, 3], repeat=3, clock=clock)
    assert order[:6] == ["a", "b", "b", "a", "a", "b"]          # the order rotates every repeat
    np.testing.assert_allclose(out["a"], [1.0, 3.0])
    np.testing.assert_allclose(out["b"], [2.0, 6.0])


@pytest.mark.parametrize("fn", [lambda: step_breakdown(lambda i, lap: None, lambda i: None, items=[]),
                                lambda: per_item_medians({"a": lambda i: None}, items=[1], repeat=0)])
def test_empty_input_is_refused(fn):
    with pytest.raises(ValueError):
        fn()


def test_each_clock_reading_is_charged_its_own_cost():
    class SlowClock(FakeClock):
        def __call__(self):          # every reading costs 0.25 s of the time it measures
            self.now += 0.25
            return self.now

    clock = SlowClock()
    assert clock_cost(clock, n=10) == pytest.approx(0.25)

    def timed(item, lap):
        clock.tick(1.0)
        lap("a")
        clock.tick(2.0)
        lap("b")

    result = step_breakdown(timed, lambda item: clock.tick(3.0), items=[0, 1], repeat=3, clock=clock)
    assert result.steps == pytest.approx({"a": 1.0, "b": 2.0})
    assert result.whole == pytest.approx(3.0)
    out = per_item_medians({"x": lambda item: clock.tick(5.0)}, items=[0], repeat=3, clock=clock)
    np.testing.assert_allclose(out["x"], [5.0])


def test_best_of_keeps_the_fastest_run_and_the_result():
    clock = FakeClock()
    costs = iter([3.0, 1.0, 2.0])

    def fn():
        clock.tick(next(costs))
        return "done"

    assert best_of(fn, repeat=3, clock=clock) == (1.0, "done")
    with pytest.raises(ValueError):
        best_of(fn, repeat=0)
