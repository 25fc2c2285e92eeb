"""`edgekit chat` keeps one state across turns: each turn only feeds its own new tokens."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.tokenizer import Tokenizer, render_chat


def test_chat_continues_the_same_state(int4_bundle):
    result = CliRunner().invoke(app, ["chat", str(int4_bundle), "--system", "Be brief.", "-n", "4"],
                                input="Hello there\nAnd again\n\n")
    assert result.exit_code == 0, result.output
    stats = [tuple(map(int, s)) for s in re.findall(r"\[(\d+) prompt tokens.*context (\d+)/\d+\]", result.stderr)]
    assert len(stats) == 2
    (p1, c1), (p2, c2) = stats

    tok = Tokenizer.from_file(int4_bundle / "tokenizer.json")
    first = render_chat([{"role": "system", "content": "Be brief."}], add_generation_prompt=False) \
        + render_chat([{"role": "user", "content": "Hello there"}])
    second = "<|im_end|>\n" + render_chat([{"role": "user", "content": "And again"}])
    assert p1 == len(tok.encode(first))
    assert p2 == len(tok.encode(second))  # turn 2 feeds only its own tokens, not the conversation
    assert p1 <= c1 <= p1 + 4  # plus at most the 4 generated tokens
    assert c1 + p2 <= c2 <= c1 + p2 + 4
