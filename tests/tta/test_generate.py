"""One video end to end with the tiny family: outputs, shared noise, isolation, failures."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sora_tta.data.video import read_frames
from sora_tta.layout import CheckpointLayout
from sora_tta.models import pipeline
from sora_tta.tta import generate as gen
from sora_tta.tta import outputs
from sora_tta.tta.adapt import AdaptConfig
from sora_tta.tta.generate import GenerateRequest, GenerationError
from sora_tta.tta.method import MethodSpec, SamplingConfig

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
    assert list(rows[0]) == list(outputs.LOSS_COLUMNS)
    assert {r["branch"] for r in rows} <= {"prompt+cond", "negative+cond", "negative+zero"}
    assert meta["final_loss"] == pytest.approx(float(rows[-1]["loss"]))
    adapter = load_file(out / "adapter.safetensors")
    assert len(adapter) == 2 * 24 and all(t.dtype == torch.float32 for t in adapter.values())
    assert meta["trainable_parameters"] == sum(t.numel() for t in adapter.values())
    assert meta["adapted_modules"] == 24 and meta["resumed_from_step"] == 0
    assert meta["seeds"]["noise"] == base["seeds"]["noise"]
    assert meta["seeds"]["adapt"] != base["seeds"]["adapt"]
    assert meta["config_hash"] != base["config_hash"]


def test_noise_depends_on_video_not_method(bundle, request_for) -> None:
    """Same noise for every method: a baseline under another name and a TTA run with
    learning rate 0 (the adapter stays at its zero start) reproduce the baseline video bit
    for bit; the same run with a non-zero learning rate does not."""
    first = request_for("v_a", "baseline")
    gen.generate(first, bundle=bundle)
    renamed = request_for("v_a", "renamed")
    gen.generate(renamed, bundle=bundle)
    frozen_config = AdaptConfig(rank=4, steps=2, warmup_steps=0, lr=0.0, checkpoint_every=0)
    frozen = request_for("v_a", "frozen", frozen_config)
    gen.generate(frozen, bundle=bundle)
    reference = read_frames(first.out_dir / "video.mkv")
    assert np.array_equal(read_frames(renamed.out_dir / "video.mkv"), reference)
    assert np.array_equal(read_frames(frozen.out_dir / "video.mkv"), reference)
    learning = request_for("v_a", "learning", dataclasses.replace(frozen_config, lr=1e-2))
    gen.generate(learning, bundle=bundle)
    assert not np.array_equal(read_frames(learning.out_dir / "video.mkv"), reference)
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


def test_too_short_clip_is_refused(bundle, request_for, tmp_path, clip_maker) -> None:
    request = request_for("v_a", "baseline")
    request.clip = clip_maker.write(tmp_path / "short.mkv", clip_maker.pattern(frames=20))
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


@pytest.mark.parametrize("k", [1, 3, 5])
def test_condition_ignores_every_pixel_frame_after_its_own(bundle, clip_dir, k) -> None:
    """Issue 12 item 1: the k clean latent frames handed over in adaptation are the first
    4(k-1)+1 pixel frames encoded on their own: changing any later frame (the ones whose
    latents carry the loss) leaves them bit-identical, while the loss target changes."""
    frames = read_frames(clip_dir / "v_a.mkv", 33)
    sampling = SamplingConfig(num_steps=1)
    config = AdaptConfig(continue_frames=[k], text_dropout=0.0)
    negative = (torch.zeros(1, 8, 48), torch.zeros(1, 32))
    prompt = (torch.ones(1, 8, 48), torch.ones(1, 32))

    def target_of(clip: np.ndarray):
        condition = pipeline.encode_condition(bundle, clip, 33, 65)
        return gen.adaptation_target(bundle, clip, condition, config, sampling, prompt, negative)

    original = target_of(frames)
    assert list(original.conditions) == [k]
    last = 4 * (k - 1) + 1
    for changed in (last, 17, 32):
        edited = frames.copy()
        edited[changed] = 255 - edited[changed]
        other = target_of(edited)
        assert torch.equal(other.conditions[k], original.conditions[k])
        assert not torch.equal(other.x0, original.x0)
    # The last frame it covers does change it, and it is not a slice of the window's encoding.
    edited = frames.copy()
    edited[last - 1] = 255 - edited[last - 1]
    assert not torch.equal(target_of(edited).conditions[k], original.conditions[k])
    assert not torch.allclose(original.conditions[k], original.x0[:, :, :k], atol=1e-3)


def _flag_when_called(monkeypatch, module, name: str, flag) -> None:
    """Set ``flag`` (as a SIGTERM would) when ``module.name`` is called, then call it."""
    original = getattr(module, name)

    def wrapped(*args, **kwargs):
        flag.set(15)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)


@pytest.mark.parametrize("stage", ["sampling", "decoding"])
def test_signal_while_sampling_keeps_the_adapter_and_rerun_only_samples(
    bundle, request_for, monkeypatch, tmp_path, stage
) -> None:
    """Issue 12 item 8: SIGTERM during sampling or decoding saves the trained adapter and
    exits 75, also without periodic checkpoints; the rerun adapts no step and produces
    exactly the uninterrupted run's video and adapter."""
    from sora_tta.tta import checkpoint as ckpt

    config = AdaptConfig(rank=4, steps=3, warmup_steps=1, lr=5e-3, checkpoint_every=0)
    reference = request_for("v_a", "tta", config, save_adapter=True)
    reference.out_dir = tmp_path / "reference"
    gen.generate(reference, bundle=bundle)
    request = request_for("v_a", "tta", config, save_adapter=True)
    stop = ckpt.PreemptionFlag()
    with monkeypatch.context() as patch:
        if stage == "sampling":
            _flag_when_called(patch, gen, "branch_movement", stop)  # right before sampling
        else:
            _flag_when_called(patch, pipeline, "decode_to_frames", stop)
        with pytest.raises(GenerationError, match=f"signal 15 .*{stage[:6]}") as info:
            gen.generate(request, bundle=bundle, stop=stop)
    assert info.value.exit_code == ckpt.EXIT_PREEMPTED
    assert _listing(request.out_dir) == {"resume", "resume/state.pt"}
    assert torch.load(request.out_dir / "resume/state.pt", weights_only=True)["step"] == 3
    meta = gen.generate(request, bundle=bundle)
    assert meta["resumed_from_step"] == 3 and not (request.out_dir / "resume").exists()
    assert np.array_equal(
        *(read_frames(d / "video.mkv") for d in (request.out_dir, reference.out_dir))
    )
    losses = [[r["loss"] for r in csv.DictReader((d / "loss.csv").open())]
              for d in (request.out_dir, reference.out_dir)]  # fmt: skip
    assert len(losses[0]) == 3 and losses[0] == losses[1]
    a, b = (load_file(d / "adapter.safetensors") for d in (request.out_dir, reference.out_dir))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_baseline_stops_on_a_signal_and_says_so(bundle, request_for, caplog, monkeypatch) -> None:
    from sora_tta.tta import checkpoint as ckpt

    request = request_for("v_a", "baseline")
    stop = ckpt.PreemptionFlag()
    stop.set(10)
    with caplog.at_level("INFO"), pytest.raises(GenerationError) as info:
        gen.generate(request, bundle=bundle, stop=stop)
    assert info.value.exit_code == ckpt.EXIT_PREEMPTED
    assert gen.BASELINE_SIGNAL_NOTE in caplog.text and "nothing to save" in caplog.text
    assert _listing(request.out_dir) == set()


def test_branch_movement_is_recorded_and_zero_without_learning(bundle, request_for) -> None:
    """meta.json says how far each guidance branch moved at the first sampling step."""
    moved = gen.generate(request_for("v_a", "tta", ADAPT), bundle=bundle)["branch_movement"]
    keys = {"prompt+cond", "negative+cond", "negative+zero", "guided"}
    assert set(moved["abs"]) == keys and set(moved["relative"]) == keys
    assert all(value > 0 for value in moved["abs"].values())
    frozen = dataclasses.replace(ADAPT, lr=0.0)
    still = gen.generate(request_for("v_a", "frozen", frozen), bundle=bundle)["branch_movement"]
    assert all(value == 0 for value in still["abs"].values())


def test_resume_identity_hashes_inputs(request_for, tmp_path) -> None:
    import shutil

    request = request_for("v_a", "tta", ADAPT)
    identity = gen.resume_identity(request, [1, 16, 9, 4, 6])
    assert gen.resume_identity(request, [1, 16, 9, 4, 6]) == identity
    other_clip = dataclasses.replace(request, clip=request.clip.with_name("v_b.mkv"))
    assert (
        gen.resume_identity(other_clip, [1, 16, 9, 4, 6])["clip_sha256"]
        != (identity["clip_sha256"])
    )
    swapped = dataclasses.replace(request, prompt_embedding=request.negative_embedding)
    assert (
        gen.resume_identity(swapped, [1, 16, 9, 4, 6])["prompt_sha256"]
        != (identity["prompt_sha256"])
    )
    vae = CheckpointLayout(request.checkpoint_dir).vae
    copy = tmp_path / "vae.safetensors"
    shutil.copyfile(vae, copy)
    assert outputs.checkpoint_fingerprint(copy) == outputs.checkpoint_fingerprint(vae)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF  # the last weight byte
    copy.write_bytes(bytes(data))
    assert outputs.checkpoint_fingerprint(copy) != outputs.checkpoint_fingerprint(vae)


def test_cross_video_control_adapts_on_the_donor(bundle, request_for, tmp_path) -> None:
    """Issue 12 item 5a: the adapter is trained on the donor's clip and prompt and applied
    to this video: a donor that is a copy of the video itself reproduces the ordinary run
    exactly; another video's clip gives another adaptation; the donor is recorded."""
    import shutil

    config = dataclasses.replace(ADAPT, checkpoint_every=0)
    own = gen.generate(request_for("v_a", "self", config), bundle=bundle)
    cross = dataclasses.replace(config, adapt_on="cross-video")
    twin = tmp_path / "v_twin.mkv"
    shutil.copyfile(request_for("v_a", "x").clip, twin)

    def donor_request(method: str, clip: Path, donor_id: str) -> GenerateRequest:
        request = request_for("v_a", method, cross)
        request.adapt_clip, request.adapt_video_id = clip, donor_id
        request.adapt_prompt_embedding = request.prompt_embedding
        return request

    same = donor_request("self", twin, "v_twin")  # the same method id: the same seeds
    same.out_dir = tmp_path / "twin"
    copied = gen.generate(same, bundle=bundle)
    assert copied["adapt_video_id"] == "v_twin" and copied["final_loss"] == own["final_loss"]
    other_clip = request_for("v_b", "x").clip
    other = gen.generate(donor_request("self", other_clip, "v_b"), bundle=bundle)
    assert other["final_loss"] != own["final_loss"] and other["adapt_clip"] == str(other_clip)
    with pytest.raises(ValueError, match="needs --adapt-clip"):
        gen.generate(request_for("v_a", "cross", cross), bundle=bundle)
    stray = request_for("v_a", "tta", config)
    stray.adapt_clip = twin
    with pytest.raises(ValueError, match="only for adapt_on cross-video"):
        gen.generate(stray, bundle=bundle)
