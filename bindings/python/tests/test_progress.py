"""The progress line of the long-running tools (slay._progress): count, elapsed time and ETA on the
progress stream, report lines flushed to the output stream, nothing on the progress stream when quiet,
and an in-place line (cleared before each report line) on a terminal."""
import io

from slay._progress import Progress, format_seconds


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_counts_steps_with_eta_and_done():
    err, out = io.StringIO(), io.StringIO()
    progress = Progress(3, stream=err, out=out)
    progress.print("row 1")
    progress.step("first")
    progress.step("second")
    progress.step("third")
    lines = err.getvalue().splitlines()
    assert [line.split("]")[0] for line in lines] == ["[1/3", "[2/3", "[3/3"]
    assert "first" in lines[0] and "ETA" in lines[0] and "elapsed" in lines[0] and lines[2].endswith("done)")
    assert out.getvalue() == "row 1\n"


def test_more_steps_than_planned_still_counts():
    err = io.StringIO()
    progress = Progress(1, stream=err, out=io.StringIO())
    progress.step("a")
    progress.step("b")
    assert err.getvalue().splitlines()[-1].startswith("[2/2]")


def test_quiet_writes_no_progress_but_the_rows():
    err, out = io.StringIO(), io.StringIO()
    progress = Progress(2, quiet=True, stream=err, out=out)
    progress.print("row")
    progress.step("a")
    progress.close()
    assert err.getvalue() == "" and out.getvalue() == "row\n"


def test_terminal_line_is_redrawn_and_cleared_before_rows():
    err, out = Terminal(), io.StringIO()
    progress = Progress(2, stream=err, out=out)
    progress.step("a")
    progress.print("row")
    progress.close()
    text = err.getvalue()
    assert "\n" not in text and text.startswith("\r\033[K[1/2] a") and text.endswith("\r\033[K")
    assert out.getvalue() == "row\n"


def test_format_seconds():
    assert format_seconds(4.4) == "4 s" and format_seconds(125) == "2 min 05 s"
    assert format_seconds(3720) == "1 h 02 min" and format_seconds(-1) == "0 s"
