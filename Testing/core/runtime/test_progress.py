"""One progress shape across the core: a step's 0..1 lands in its part of the whole, with its message."""

from ElastixMonaiLabelLib.runtime.progress import no_progress, sub_progress


def test_a_step_reports_within_its_part_of_the_whole():
    heard = []
    step = sub_progress(lambda fraction, message: heard.append((fraction, message)), 0.25, 0.75, "t2 -> t1")
    step(0.0, "registering t2")
    step(0.5, "registering t2")
    step(None, "a message without an estimate")
    step(1.0, "")
    assert heard == [(0.25, "t2 -> t1"), (0.5, "t2 -> t1"), (None, "t2 -> t1"), (0.75, "t2 -> t1")]
    own = []
    sub_progress(lambda fraction, message: own.append(message), 0.0, 0.3)(0.5, "its own message")
    assert own == ["its own message"]
    assert sub_progress(None, 0.0, 1.0) is no_progress
