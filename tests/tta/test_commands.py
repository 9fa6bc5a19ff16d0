"""The ``generate`` and ``encode-prompts`` commands, including preemption and resume."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from sora_tta.cli import main
from sora_tta.data.manifest import MANIFEST_COLUMNS
from sora_tta.models.text import format_prompt, load_prompt_embedding, prompt_id
from sora_tta.tta.checkpoint import EXIT_PREEMPTED
from sora_tta.tta.commands import prompt_files_for_manifest


@pytest.fixture
def generate_args(tiny_ckpt_dir, clip_dir, prompt_dir, prompt_file, tmp_path):
    """``generate_args(method, out_dir, *extra, adapt=None)``: a full ``sora-tta generate``
    argv whose ``--method-json`` (written next to ``out_dir``) has 2 sampling steps."""

    def make(method: str, out_dir: Path, *extra: str, adapt: dict | None = None) -> list[str]:
        method_json = out_dir.with_name(f"{out_dir.name}-method.json")
        spec = {"method": method, "sampling": {"num_steps": 2}, "adapt": adapt}
        method_json.write_text(json.dumps(spec))
        return [
            "generate", "--clip", str(clip_dir / "v_a.mkv"), "--video-id", "v_a",
            "--method-json", str(method_json), "--prompt-embedding", str(prompt_file),
            "--negative-embedding", str(prompt_dir / "negative.safetensors"),
            "--checkpoint-dir", str(tiny_ckpt_dir), "--out-dir", str(out_dir),
            "--device", "cpu", "--no-progress", *extra,
        ]  # fmt: skip

    return make


def test_generate_command_baseline_and_adapted(generate_args, tmp_path) -> None:
    assert main(generate_args("baseline", tmp_path / "base")) == 0
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == ["meta.json", "video.mkv"]
    adapt = {"rank": 2, "steps": 2, "warmup_steps": 1, "targets": "attn+fused+mlp"}
    out = tmp_path / "tta"
    assert main(generate_args("tta", out, "--save-adapter", adapt=adapt)) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter.safetensors", "loss.csv", "meta.json", "video.mkv"
    ]  # fmt: skip
    meta = json.loads((out / "meta.json").read_text())
    assert (
        meta["adapt_config"]["targets"] == "attn+fused+mlp"
        and meta["adapted_modules"] == 2 * 12 + 2 * 4
    )


def test_diverging_generation_exits_0_with_a_failed_outcome(generate_args, tmp_path, caplog):
    """A deterministic failure is the video's result: recorded, exit 0, so it is not retried."""
    adapt = {"rank": 2, "steps": 8, "warmup_steps": 0, "lr": 1e30}
    out = tmp_path / "boom"
    assert main(generate_args("boom", out, adapt=adapt)) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["outcome"] == "failed" and meta["stage"] == "adapt"
    assert not (out / "video.mkv").exists()
    assert "recorded as a failed outcome" in caplog.text


def test_generate_command_rejects_bad_configs(generate_args, tmp_path, capsys) -> None:
    argv = generate_args("tta", tmp_path / "o", adapt={"rank": 4, "learning_rate": 1e-3})
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    method_json = argv[argv.index("--method-json") + 1]
    assert (
        f"{method_json} (adapt): unknown keys ['learning_rate']; valid keys are ['rank', 'alpha'"
        in err
    )
    argv = generate_args("tta", tmp_path / "o", adapt={"targets": "double_blocks.0.qkv"})
    assert main(argv) == 1
    assert "match no nn.Linear" in capsys.readouterr().err
    args = generate_args("baseline", tmp_path / "o")
    assert main([*args, "--method", "other"]) == 1
    assert "--method 'other' but" in capsys.readouterr().err
    args[args.index("--clip") + 1] = str(tmp_path / "missing.mkv")
    assert main(args) == 1
    assert "missing.mkv: file not found" in capsys.readouterr().err
    assert not (tmp_path / "o" / "video.mkv").exists()


def _manifest(path: Path) -> pd.DataFrame:
    rows = []
    cases = [
        ("v_1", "a person playing guitar", "ok"),
        ("v_2", "a man doing jumping jack", "ok"),
        ("v_3", "a person playing guitar", "ok"),
        ("v_4", "a child rowing", "too_short"),
    ]
    for index, (video, caption, status) in enumerate(cases):
        row = dict.fromkeys(MANIFEST_COLUMNS, "")
        row.update(video_id=video, class_name="C", class_index=1, caption=caption, split=1,
                   subset="test", group=1, clip=index, source_path=f"{video}.avi", num_frames=120,
                   fps=25.0, width=320, height=240, status=status, role="test")  # fmt: skip
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.to_csv(path, index=False)
    return frame


def test_prompt_files_for_manifest(tmp_path) -> None:
    frame = _manifest(tmp_path / "manifest.csv")
    mapping = prompt_files_for_manifest(frame, fps=24, motion_score=4)
    guitar = prompt_id(format_prompt("a person playing guitar", 24, 4))
    assert mapping == {"v_1": guitar, "v_2": prompt_id(format_prompt("a man doing jumping jack")),
                       "v_3": guitar}  # fmt: skip
    assert prompt_files_for_manifest(frame, fps=8)["v_1"] != guitar


def test_encode_prompts_command(tiny_ckpt_dir, tmp_path) -> None:
    _manifest(tmp_path / "manifest.csv")
    out = tmp_path / "prompts"
    argv = ["encode-prompts", "--manifest", str(tmp_path / "manifest.csv"), "--device", "cpu",
            "--checkpoint-dir", str(tiny_ckpt_dir), "--out-dir", str(out)]  # fmt: skip
    assert main(argv) == 0
    guitar = format_prompt("a person playing guitar")
    expected = {f"{prompt_id(guitar)}.safetensors", "negative.safetensors",
                f"{prompt_id(format_prompt('a man doing jumping jack'))}.safetensors"}  # fmt: skip
    assert {p.name for p in out.iterdir()} == expected
    prompt, txt, y_vec = load_prompt_embedding(out / f"{prompt_id(guitar)}.safetensors")
    assert prompt == guitar and txt.shape == (1, 512, 48) and y_vec.shape == (1, 32)
    assert load_prompt_embedding(out / "negative.safetensors")[0] == ""
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(argv) == 0  # nothing to redo
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps


@pytest.mark.slow
def test_sigterm_saves_exits_75_and_resume_matches(generate_args, tmp_path) -> None:
    """A preempted run exits 75 with its state; rerunning it ends with the adapter an
    uninterrupted run produces (exactly, on the CPU). The interruption lands strictly before
    the last step, so the rerun really adapts again."""
    steps = 30
    config = {"rank": 4, "steps": steps, "warmup_steps": 2, "lr": 1e-3, "dropout": 0.1,
              "mode": "mixed", "checkpoint_every": 1}  # fmt: skip
    out = tmp_path / "run"
    argv = generate_args("tta", out, "--save-adapter", adapt=config)
    command = [
        sys.executable,
        "-c",
        "import sys; from sora_tta.cli import main; sys.exit(main())",
        *argv,
    ]
    state = out / "resume" / "state.pt"
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    # Freeze the run while the signal is queued, so it arrives mid-adaptation (step >= 1).
    proc.send_signal(signal.SIGSTOP)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_PREEMPTED, stderr
    assert "interrupted by signal 15" in stderr.splitlines()[-1]
    stopped_at = torch.load(state, weights_only=True)["step"]
    assert 1 <= stopped_at < steps
    assert not (out / "video.mkv").exists() and not (out / "meta.json").exists()

    assert main(argv) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["resumed_from_step"] == stopped_at
    assert not (out / "resume").exists()
    reference = tmp_path / "reference"
    assert main(generate_args("tta", reference, "--save-adapter", adapt=config)) == 0
    resumed = load_file(out / "adapter.safetensors")
    uninterrupted = load_file(reference / "adapter.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
    losses = [pd.read_csv(folder / "loss.csv")["loss"].tolist() for folder in (out, reference)]
    assert len(losses[0]) == steps and losses[0] == losses[1]
    assert os.path.getsize(out / "video.mkv") > 0


def test_generate_logs_progress_lines(generate_args, tmp_path, caplog) -> None:
    """Adaptation steps (loss, lr, s/step, ETA), sampling and decoding reach the log."""
    adapt = {"rank": 2, "steps": 2, "warmup_steps": 1}
    with caplog.at_level(logging.INFO):
        assert (
            main(generate_args("tta", tmp_path / "tta", "--progress-every", "1", adapt=adapt)) == 0
        )
    text = "\n".join(caplog.messages)
    assert "adapt step 1/2 loss " in text and "adapt step 2/2 loss " in text
    assert " s/step ETA " in text
    assert "v_a: sampling 2 steps: start" in text and "v_a: sampling 2 steps: done in" in text
    assert "v_a: decoding: done in" in text


def test_generate_loads_from_the_staged_checkpoints(generate_args, tmp_path) -> None:
    import numpy as np

    from sora_tta.data.video import read_frames
    from sora_tta.staging import MARKER

    stage = tmp_path / "node-local"
    args = generate_args("baseline", tmp_path / "staged", "--stage-dir", str(stage))
    assert main([*args, "--compile", "off"]) == 0
    meta = json.loads((tmp_path / "staged" / "meta.json").read_text())
    staged = Path(meta["checkpoint_dir"])
    assert staged.parent == stage and (staged / MARKER).is_file()
    assert meta["compile"] == {"mode": "off", "compiled": False, "fallback": None}
    assert main(generate_args("baseline", tmp_path / "direct")) == 0
    video = read_frames(tmp_path / "direct" / "video.mkv")
    assert np.array_equal(video, read_frames(tmp_path / "staged" / "video.mkv"))
