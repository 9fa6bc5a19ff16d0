"""One video end to end with the tiny family: outputs, shared noise, isolation, failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sora_tta.data.video import read_frames
from sora_tta.models import pipeline
from sora_tta.tta import generate as gen
from sora_tta.tta.adapt import AdaptConfig
from sora_tta.tta.generate import GenerateRequest, GenerationError, MethodSpec, SamplingConfig

SAMPLING = SamplingConfig(num_steps=3)
ADAPT = AdaptConfig(rank=4, steps=3, warmup_steps=1, lr=1e-3, checkpoint_every=2)


@pytest.fixture
def request_for(tiny_ckpt_dir, clip_dir, prompt_dir, prompt_file, tmp_path):
    """``request_for(video, method, adapt=None, **kw)`` -> a request writing under tmp_path."""

    def make(video: str, method: str, adapt: AdaptConfig | None = None, **kw) -> GenerateRequest:
        return GenerateRequest(
            clip=clip_dir / f"{video}.mkv",
            video_id=video,
            method=method,
            prompt_embedding=prompt_file,
            negative_embedding=prompt_dir / "negative.safetensors",
            checkpoint_dir=tiny_ckpt_dir,
            out_dir=tmp_path / method / video,
            adapt=adapt,
            sampling=SAMPLING,
            progress=False,
            **kw,
        )

    return make


def _listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def test_baseline_outputs(bundle, request_for) -> None:
    request = request_for("v_a", "baseline")
    meta = gen.generate(request, bundle=bundle)
    out = request.out_dir
    assert _listing(out) == {"video.mkv", "meta.json"}
    video = read_frames(out / "video.mkv")
    assert video.shape == (65, 32, 48, 3)
    assert json.loads((out / "meta.json").read_text()) == json.loads(json.dumps(meta))
    assert meta["method"] == "baseline" and meta["video_id"] == "v_a"
    assert meta["trainable_parameters"] == 0 and meta["final_loss"] is None
    assert set(meta["timings"]) == {"load", "encode", "adapt", "sample", "decode", "total"}
    assert meta["prompt"] == "a person playing guitar. 24 FPS. 4 motion score."
    assert meta["fps"] == 25.0 and meta["device"] == "cpu" and meta["dtype"] == "float32"
    assert meta["peak_memory_mb"] > 0 and "torch" in meta["versions"]


def test_adapted_outputs_and_shared_noise(bundle, request_for) -> None:
    base = gen.generate(request_for("v_a", "baseline"), bundle=bundle)
    request = request_for("v_a", "tta", ADAPT, save_adapter=True)
    meta = gen.generate(request, bundle=bundle)
    out = request.out_dir
    assert _listing(out) == {"video.mkv", "meta.json", "loss.csv", "adapter.safetensors"}
    rows = list(csv.DictReader((out / "loss.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert list(rows[0]) == ["step", "loss", "lr", "timestep", "grad_norm", "seconds"]
    assert meta["final_loss"] == pytest.approx(float(rows[-1]["loss"]))
    adapter = load_file(out / "adapter.safetensors")
    assert len(adapter) == 2 * 24 and all(t.dtype == torch.float32 for t in adapter.values())
    assert meta["trainable_parameters"] == sum(t.numel() for t in adapter.values())
    assert meta["adapted_modules"] == 24 and meta["resumed_from_step"] == 0
    assert meta["seeds"]["noise"] == base["seeds"]["noise"]
    assert meta["seeds"]["adapt"] != base["seeds"]["adapt"]
    assert meta["config_hash"] != base["config_hash"]


def test_noise_depends_on_video_not_method(bundle, request_for) -> None:
    """Same noise for every method: a baseline under another name and a TTA run whose
    adapter stays numerically zero (lr 1e-30) reproduce the baseline video exactly."""
    first = request_for("v_a", "baseline")
    gen.generate(first, bundle=bundle)
    renamed = request_for("v_a", "renamed")
    gen.generate(renamed, bundle=bundle)
    frozen = request_for(
        "v_a", "frozen", AdaptConfig(rank=4, steps=2, warmup_steps=0, lr=1e-30, checkpoint_every=0)
    )
    gen.generate(frozen, bundle=bundle)
    reference = read_frames(first.out_dir / "video.mkv")
    assert np.array_equal(read_frames(renamed.out_dir / "video.mkv"), reference)
    assert np.array_equal(read_frames(frozen.out_dir / "video.mkv"), reference)
    other = request_for("v_b", "baseline")
    gen.generate(other, bundle=bundle)
    assert not np.array_equal(read_frames(other.out_dir / "video.mkv"), reference)


def test_two_videos_in_one_process_match_fresh_runs(
    bundle, request_for, state_hash, tmp_path
) -> None:
    loaded = state_hash(bundle.mmdit)
    config = AdaptConfig(rank=4, steps=3, warmup_steps=1, lr=5e-3, dropout=0.1, checkpoint_every=0)
    gen.generate(request_for("v_a", "tta", config, save_adapter=True), bundle=bundle)
    in_process = request_for("v_b", "tta", config, save_adapter=True)
    gen.generate(in_process, bundle=bundle)
    assert state_hash(bundle.mmdit) == loaded
    fresh = request_for("v_b", "tta", config, save_adapter=True)
    fresh.out_dir = tmp_path / "fresh" / "v_b"
    gen.generate(fresh)  # loads its own models, like a new process
    a, b = (
        load_file(in_process.out_dir / "adapter.safetensors"),
        load_file(fresh.out_dir / "adapter.safetensors"),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert np.array_equal(
        read_frames(in_process.out_dir / "video.mkv"), read_frames(fresh.out_dir / "video.mkv")
    )


def test_divergence_is_a_final_outcome_without_video(bundle, request_for) -> None:
    request = request_for(
        "v_a", "boom", AdaptConfig(rank=4, steps=20, warmup_steps=0, lr=1e30, checkpoint_every=1)
    )
    request.out_dir.mkdir(parents=True)
    (request.out_dir / "video.mkv").write_bytes(b"stale output of an earlier run")
    with pytest.raises(
        GenerationError, match=r"v_a \(boom\): non-finite .* at adaptation step \d+ \(loss="
    ) as info:
        gen.generate(request, bundle=bundle)
    assert info.value.exit_code == 1 and info.value.final
    assert _listing(request.out_dir) == {"failure.json", "meta.json"}
    failure = json.loads((request.out_dir / "failure.json").read_text())
    assert failure["stage"] == "adapt" and failure["video_id"] == "v_a" and failure["step"] >= 1
    assert "loss" in failure and "non-finite" in failure["error"]
    meta = json.loads((request.out_dir / "meta.json").read_text())
    assert meta == {**failure, "outcome": "failed"}


def test_sampling_config_checks() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        SamplingConfig.from_dict({"steps": 3})
    with pytest.raises(ValueError, match="4k \\+ 1"):
        SamplingConfig(num_cond_frames=32)
    assert SamplingConfig().cond_latent_frames == 9
    assert (
        SamplingConfig.from_dict({"num_steps": 4, "text_osci": False}).guidance_config().num_steps
        == 4
    )


def test_too_short_clip_is_refused(bundle, request_for, tmp_path) -> None:
    from sora_tta.data.video import write_lossless

    request = request_for("v_a", "baseline")
    request.clip = tmp_path / "short.mkv"
    write_lossless(request.clip, np.zeros((20, 32, 48, 3), np.uint8), fps=25)
    with pytest.raises(ValueError, match=r"short\.mkv: has 20 frames, need 33"):
        gen.generate(request, bundle=bundle)
    assert pipeline.NUM_COND_FRAMES == 33


def test_method_spec_round_trip_and_errors() -> None:
    data = {"method": "r4", "sampling": {"num_steps": 3}, "adapt": {"rank": 4}}
    spec = MethodSpec.from_dict(data)
    assert spec.sampling == SamplingConfig(num_steps=3) and spec.adapt.rank == 4
    assert MethodSpec.from_dict(spec.to_dict()) == spec
    assert MethodSpec.from_dict({}) == MethodSpec()  # the baseline, default sampling
    with pytest.raises(ValueError, match=r"m\.json: unknown keys \['steps'\]"):
        MethodSpec.from_dict({"steps": 3}, "m.json")
    with pytest.raises(ValueError, match=r"m\.json \(sampling\): unknown keys \['rank'\]"):
        MethodSpec.from_dict({"sampling": {"rank": 3}}, "m.json")
    with pytest.raises(ValueError, match="non-empty string"):
        MethodSpec.from_dict({"method": 3}, "m.json")
