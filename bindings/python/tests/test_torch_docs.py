"""Every ```python block of docs/pytorch.md runs as written (one namespace per block, in order):
the op with autograd, the module, swapping attention in a transformers model, porting an fla call."""
import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "pytorch.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.S | re.M)


def test_the_page_has_its_examples():
    text = "\n".join(BLOCKS)
    assert len(BLOCKS) >= 4
    assert "backward()" in text and "attn_implementation=\"slay\"" in text and "slay.torch.fla import" in text


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_block_runs(number):
    exec(compile(BLOCKS[number], "docs/pytorch.md python block %d" % number, "exec"), {"__name__": "__doc__"})
