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
    pattern = r"\[(\d+) prompt tokens, (\d+) reused from the prompt cache.*context (\d+)/\d+\]"
    stats = [tuple(map(int, s)) for s in re.findall(pattern, result.stderr)]
    assert len(stats) == 2
    (p1, r1, c1), (p2, r2, c2) = stats

    tok = Tokenizer.from_file(int4_bundle / "tokenizer.json")
    first = render_chat([{"role": "system", "content": "Be brief."}], add_generation_prompt=False) \
        + render_chat([{"role": "user", "content": "Hello there"}])
    second = "<|im_end|>\n" + render_chat([{"role": "user", "content": "And again"}])
    assert p1 == len(tok.encode(first)) and r1 == 0
    assert p1 <= c1 <= p1 + 4  # plus at most the 4 generated tokens
    # Turn 2's prompt is the whole conversation, but all of turn 1 (prompt + reply) comes from the
    # checkpoint taken after the reply: only turn 2's own tokens are fed.
    assert r2 == c1 and p2 - r2 == len(tok.encode(second))
    assert p2 <= c2 <= p2 + 4
