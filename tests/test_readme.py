"""The README's Python API example runs (on the tiny family, on the CPU)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def api_example() -> str:
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    return blocks[0]


def test_readme_api_example_runs(tiny_ckpt_dir: Path, tmp_path: Path, clip_maker) -> None:
    clip = clip_maker.write(tmp_path / "clip.mkv")
    code = api_example()
    # Same code, CPU-sized: the tiny family instead of ckpts/, float32 on the CPU, few steps.
    for old, new in {
        '"ckpts"': repr(str(tiny_ckpt_dir)),
        '"cuda"': '"cpu"',
        "torch.bfloat16": "torch.float32",
        '"results/clips/v_PlayingGuitar_g01_c01.mkv"': repr(str(clip)),
        "num_steps=25": "num_steps=2",
    }.items():
        assert old in code, f"README example no longer contains {old}"
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    video = namespace["video"]
    assert video.shape == (65, 32, 48, 3) and video.dtype == np.uint8
