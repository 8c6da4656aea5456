"""Every command's --help: a flag takes no value, so none shows a type beside it."""

from __future__ import annotations

import pytest

COMMANDS = [[], ["train"], ["search"], ["best"], ["doctor"], ["cv"], ["predict"], ["blend"], ["demo"], ["ui"], ["data"], ["data", "check"], ["data", "cache"], ["data", "demo"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "rockopt")
def test_help_shows_no_type_beside_a_flag(run_cli, command):
    code, out, err = run_cli(*command, "--help")
    assert code == 0, err
    assert "--help" in out and "<bool>" not in out, out
    if command == ["train"]:
        assert "<path>" in out and "--all-folds" in out  # options that take a value keep their type
