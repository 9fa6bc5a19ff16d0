"""One CLI mechanism: shared options defined once (sora_tta.cli_options), the same
validation in every subcommand, help on every option, --version, -v after the subcommand."""

from __future__ import annotations

import argparse

import pytest

from sora_tta import cli
from sora_tta import cli_options as opts


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_has_help() -> None:
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, sub in subcommands().items()
        for action in sub._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert missing == []


def test_shared_options_are_the_same_everywhere() -> None:
    seen = {"--device": set(), "--dtype": set(), "--seed": set()}
    for sub in subcommands().values():
        for action in sub._actions:
            for flag in seen:
                if flag in action.option_strings:
                    seen[flag].add((action.type, tuple(action.choices or ()), action.default))
    assert seen["--device"] == {(opts.device_name, (), "auto")}
    assert seen["--dtype"] == {(None, opts.DTYPE_NAMES, "auto")}
    assert {t for t, _, _ in seen["--seed"]} == {opts.non_negative_int}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["smoke", "--checkpoint-dir", "x", "--frames", "-3"], "-3 is not a positive integer"),
        (["smoke", "--checkpoint-dir", "x", "--steps", "0"], "0 is not a positive integer"),
        (["smoke", "--checkpoint-dir", "x", "--device", "gpu"], "'gpu' is not a device"),
        (["smoke", "--checkpoint-dir", "x", "--seed", "-1"], "-1 is negative"),
        (
            [
                "encode-prompts",
                "--manifest",
                "m",
                "--checkpoint-dir",
                "c",
                "--out-dir",
                "o",
                "--fps",
                "0",
            ],
            "0 is not a positive integer",
        ),
    ],
)
def test_counts_and_devices_are_validated(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_device_names() -> None:
    for name in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert opts.device_name(name) == name
    for bad in ("gpu", "cuda:", "cuda:x", "CPU"):
        with pytest.raises(argparse.ArgumentTypeError):
            opts.device_name(bad)


def test_version_and_verbose_after_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("sora-tta ")
    parser = cli.build_parser()
    after = parser.parse_args(["smoke", "--checkpoint-dir", "x", "-v"])
    before = parser.parse_args(["-v", "smoke", "--checkpoint-dir", "x"])
    neither = parser.parse_args(["smoke", "--checkpoint-dir", "x"])
    assert after.verbose and before.verbose and not neither.verbose
