"""Progress of long stages when no terminal watches: an estimate first, then regular lines."""

import io
import time

from rakuten.progress import Progress, duration


def test_off_a_terminal_a_long_stage_says_its_estimate_then_progress_lines():
    out = io.StringIO()
    with Progress(100, "texts", "e5", every=0.05, announce_over=0.5, stream=out, settle=0.05) as progress:
        for _ in range(5):
            time.sleep(0.06)
            progress.update(10)  # 10 texts every 0.06 s: 100 take about 0.6 s
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("e5 on 100 texts: about ") and lines[0].endswith("here (timed on 10 after the first 10)")
    assert len(lines) >= 3, lines
    assert lines[-1].startswith("e5: 50/100 texts in 0 s, ") and "/s, about " in lines[-1] and lines[-1].endswith(" left")


def test_the_estimate_leaves_out_the_first_updates_warm_up():
    """A first batch 30x slower than the rest (oneDNN building its kernels): timing it alone
    promised 30 s for a stage of about 1 s; the estimate waits for `settle` seconds of the rest."""
    out = io.StringIO()
    with Progress(1000, "texts", "e5", every=60, announce_over=0.2, stream=out, settle=0.04) as progress:
        time.sleep(0.3)
        progress.update(10)
        for _ in range(8):
            time.sleep(0.01)
            progress.update(10)  # then 1,000 texts/s: the rest in about 1 s
    estimate = out.getvalue().splitlines()[0]
    assert estimate.startswith("e5 on 1,000 texts: about ") and " after the first 10)" in estimate
    assert int(estimate.split("about ")[1].split(" s ")[0]) < 10, estimate


def test_one_slow_batch_after_the_first_does_not_make_the_estimate():
    """Batches of long texts take twice the mean or more: timing the one after the first alone
    promised 83 min for a fine-tuning of about 50; a training's estimate waits for more updates."""
    out = io.StringIO()
    with Progress(1000, "texts", "e5", every=60, announce_over=0.2, stream=out, settle=0.04, settle_updates=4) as progress:
        progress.update(10)
        time.sleep(0.2)
        progress.update(10)  # a batch of the longest texts
        for _ in range(8):
            time.sleep(0.01)
            progress.update(10)  # then 1,000 texts/s
    estimate = out.getvalue().splitlines()[0]
    assert estimate.endswith("(timed on 40 after the first 10)"), estimate
    assert int(estimate.split("about ")[1].split(" s ")[0]) < 10, estimate  # timing the slow batch alone: 20 s


def test_a_short_stage_stays_quiet():
    out = io.StringIO()
    with Progress(100, "pictures", "EfficientNet-lite0", stream=out) as progress:
        progress.update(100)
    assert out.getvalue() == ""


def test_durations_read_like_a_person_says_them():
    assert [duration(s) for s in (12, 200, 5400)] == ["12 s", "3 min", "1 h 30 min"]
