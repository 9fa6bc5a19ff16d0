"""Shared fixtures of the data tests: a small synthetic UCF-101 tree and a CLI runner."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sora_tta import cli
from sora_tta.data.synthetic import SyntheticConfig, SyntheticTree, make_synthetic_ucf101


@pytest.fixture(scope="session")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> SyntheticTree:
    """3 classes x 6 clips (3 groups of 2), 70 frames of 64x48, plus the broken cases.

    Small frames keep it fast (the broken "odd size" clip is 65x49). Session-scoped:
    tests must not modify it (copy files they want to damage).
    """
    config = SyntheticConfig(
        classes=3, per_class=6, frames=70, seed=7, clips_per_group=2, width=64, height=48
    )
    return make_synthetic_ucf101(tmp_path_factory.mktemp("ucf") / "synthetic", config)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable:
    """Run ``sora_tta.cli.main(argv)``; return ``(exit_code, stdout, stderr)``.

    ``SystemExit`` (argparse: ``--help``, usage errors) becomes an exit code.
    """

    def run(argv: list[object]) -> tuple[int, str, str]:
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
