"""Prompt caches from the command line: saved prefixes, and chats that survive a restart."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from edgekit.cli import app

runner = CliRunner()
STATS = r"\[(\d+) prompt tokens, (\d+) reused from the prompt cache.*context (\d+)/\d+\]"


def _stats(stderr: str) -> list[tuple[int, int, int]]:
    return [tuple(map(int, s)) for s in re.findall(STATS, stderr)]


def test_chat_resumes_after_a_restart(int4_bundle, tmp_path):
    cache = tmp_path / "chat.npz"
    first = runner.invoke(app, ["chat", str(int4_bundle), "--system", "Be brief.", "-n", "3", "--cache", str(cache)],
                          input="Hello there\n\n")
    assert first.exit_code == 0, first.output
    [(_, _, context)] = _stats(first.stderr)
    second = runner.invoke(app, ["chat", str(int4_bundle), "-n", "3", "--cache", str(cache), "--resume"],
                           input="And again\n\n")
    assert second.exit_code == 0, second.output
    [(prompt, reused, _)] = _stats(second.stderr)
    assert reused == context and prompt > reused  # the whole first session came back from the file


def test_saved_prefix_is_reused_by_generate(int4_bundle, tmp_path):
    cache = tmp_path / "doc.npz"
    doc = tmp_path / "doc.txt"
    doc.write_text("The lighthouse keeper counted ships every night. " * 20)
    saved = runner.invoke(app, ["cache", "save", str(int4_bundle), "-o", str(cache), "--system", "Be brief.",
                                "--file", str(doc)])
    assert saved.exit_code == 0, saved.output
    precomputed = int(re.search(r"(\d+) tokens precomputed", saved.output).group(1))
    info = runner.invoke(app, ["cache", "info", str(int4_bundle), str(cache)])
    assert info.exit_code == 0 and f"system   {precomputed:6d} tokens" in info.output
    prompt = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n" + doc.read_text() + "\n\nHow many?"
    gen = runner.invoke(app, ["generate", str(int4_bundle), "--raw", "-p", prompt, "-n", "2", "--cache", str(cache)])
    assert gen.exit_code == 0, gen.output
    [(_, reused, _)] = _stats(gen.stderr)
    assert reused == precomputed


def test_cache_errors_are_one_line(int4_bundle, fp32_bundle, tmp_path):
    def error(args, **kw):
        result = runner.invoke(app, args, **kw)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        return lines[0]

    assert "--resume needs --cache" in error(["chat", str(int4_bundle), "--resume"], input="hi\n")
    cache = tmp_path / "c.npz"
    runner.invoke(app, ["cache", "save", str(int4_bundle), "-o", str(cache), "--system", "x"])
    assert "belongs to another bundle" in error(["generate", str(fp32_bundle), "-p", "x", "--cache", str(cache)])
    assert "no prompt cache" in error(["cache", "info", str(int4_bundle), str(tmp_path / "none.npz")])
    assert "nothing to precompute" in error(["cache", "save", str(int4_bundle), "-o", str(cache)])
