"""Fixtures shared by every test folder: the golden reference, the tiny checkpoint family, a
small synthetic UCF-101 tree, synthetic test clips and their lossless files (``clip_maker``),
the ``sora-tta`` command line as a user runs it (``run_cli``: exit code and output) and as a
function call (``invoke``: errors propagate).

The golden fixtures live in ``tests/fixtures/reference/`` (what each file holds, how it was
made and how to regenerate it: ``tests/fixtures/reference/README.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sora_tta import cli
from sora_tta.data.video import write_lossless
from sora_tta.world.clips import synthetic_clip
from sora_tta.world.synthetic_ucf101 import SyntheticConfig, SyntheticTree, make_synthetic_ucf101

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures" / "reference"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Path of the golden fixtures folder (committed with the repository)."""
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def mmdit_keys_file(fixtures_dir: Path) -> Path:
    """The key manifest of the official checkpoint ``Open_Sora_v2.safetensors``."""
    return fixtures_dir / "opensora_v2_mmdit_keys.json"


@pytest.fixture(scope="session")
def tiny_ckpt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint family (seed 0) in the official layout, written once per session.

    Tests must treat it as read-only; a test that writes checkpoints makes its own.
    """
    from sora_tta.world.tiny import make_tiny_checkpoints

    out = tmp_path_factory.mktemp("tiny_ckpts")
    make_tiny_checkpoints(out, seed=0)
    return out


I3D_STANDIN_FEATURES = 8


class _TinyI3D(torch.nn.Module):
    """Stand-in with the TorchScript I3D's interface: refuses inputs the real call convention
    would not give (not (B, 3, T, 224, 224), or outside [-1, 1] without ``rescale``)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(
            3, I3D_STANDIN_FEATURES, kernel_size=(4, 16, 16), stride=(4, 16, 16)
        )
        self.head = torch.nn.Linear(I3D_STANDIN_FEATURES, 5)

    def forward(
        self,
        x: torch.Tensor,
        rescale: bool = True,
        resize: bool = True,
        return_features: bool = False,
    ) -> torch.Tensor:
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            raise RuntimeError("resize is not implemented by this stand-in")
        if x.dim() != 5 or x.shape[1] != 3 or x.shape[3] != 224 or x.shape[4] != 224:
            raise RuntimeError("expected (B, 3, T, 224, 224)")
        if bool(x.min() < -1.0) or bool(x.max() > 1.0):
            raise RuntimeError("expected values in [-1, 1]")
        features = torch.tanh(self.conv(x)).mean(dim=(2, 3, 4)) * 10.0
        if return_features:
            return features
        return torch.softmax(self.head(features), dim=1)


@pytest.fixture(scope="session")
def i3d_standin(tmp_path_factory: pytest.TempPathFactory):
    """``save(path)``: write a stand-in of the FVD detector ``i3d_torchscript.pt`` (a
    TorchScript module with its call signature and input checks, 8 features instead of
    400, seeded) with ``torch.jit.save`` and return ``path``; ``save.folder`` is a scratch
    folder for it. The real weights cannot be downloaded in the tests."""
    import warnings

    def save(path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # torch.jit is deprecated; the weights are TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(torch.jit.script(_TinyI3D().eval()), str(path))
        return path

    save.folder = tmp_path_factory.mktemp("i3d")
    return save


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


class ClipMaker:
    """Synthetic clips, uint8 ``(T, H, W, 3)``, 65 frames of 32x48 unless told, of two kinds:
    ``moving`` (a seeded random texture) and ``pattern`` (``synthetic_clip``'s stripes and
    square); ``write`` puts one on disk losslessly (FFV1, 25 fps unless told)."""

    FRAMES, HEIGHT, WIDTH, FPS = 65, 32, 48, 25

    @staticmethod
    def moving(
        seed: int, frames: int = FRAMES, height: int = HEIGHT, width: int = WIDTH
    ) -> np.ndarray:
        """A random texture (values 30..219) drifting one pixel per frame."""
        rng = np.random.default_rng(seed)
        base = rng.integers(30, 220, size=(height, width + frames, 3), dtype=np.uint8)
        return np.stack([base[:, t : t + width] for t in range(frames)])

    @staticmethod
    def pattern(
        frames: int = FRAMES, height: int = HEIGHT, width: int = WIDTH, shift: int = 0
    ) -> np.ndarray:
        """``synthetic_clip``'s moving pattern; ``shift`` starts it later (another video)."""
        return np.ascontiguousarray(synthetic_clip(frames + shift, height, width)[shift:])

    @classmethod
    def write(
        cls, path: Path, frames: np.ndarray | None = None, *, seed: int = 0, fps: float = FPS
    ) -> Path:
        """Write ``frames`` (default ``moving(seed)``) to ``path`` (folders made); return it."""
        write_lossless(path, cls.moving(seed) if frames is None else frames, fps=fps)
        return Path(path)


@pytest.fixture(scope="session")
def clip_maker() -> type[ClipMaker]:
    """Synthetic test clips, in memory and on disk (see ``ClipMaker``)."""
    return ClipMaker


@pytest.fixture(scope="session")
def invoke() -> Callable:
    """Run a ``sora-tta`` subcommand's function on parsed ``argv`` and return its exit code;
    its errors propagate (``CommandError``), for tests that inspect them."""

    def call(argv: list[object]) -> int:
        args = cli.build_parser().parse_args([str(a) for a in argv])
        return args.func(args)

    return call


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


@pytest.fixture(scope="session")
def shipped_config() -> Callable[..., dict]:
    """``shipped_config(name, defaults=False)``: a fresh copy of ``config/<name>``; with
    ``defaults``, completed with the schema defaults the way the workflow does
    (``snakemake.utils.validate``)."""

    def load(name: str, defaults: bool = False) -> dict:
        config = yaml.safe_load((REPO_ROOT / "config" / name).read_text())
        if defaults:
            from snakemake.utils import validate

            from sora_tta.study.config import SCHEMA_PATH

            validate(config, str(SCHEMA_PATH))
        return config

    return load
