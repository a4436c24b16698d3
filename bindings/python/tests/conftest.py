import importlib.util
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# The PyTorch layer's tests (test_torch_*.py) need torch and transformers (the extra `torch`);
# without them the numpy suite runs alone and the summary says so in one line.
def _missing(name):
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


TORCH_MISSING = [name for name in ("torch", "transformers") if _missing(name)]
collect_ignore_glob = ["test_torch_*.py"] if TORCH_MISSING else []


def pytest_terminal_summary(terminalreporter):
    if TORCH_MISSING:
        terminalreporter.write_line("torch tests skipped: %s not installed (pip install torch transformers)"
                                    % " and ".join(TORCH_MISSING))
