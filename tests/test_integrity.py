"""The preflight checks of intermediates: each check, the repair, and the restored times."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from sora_tta import integrity as I
from sora_tta.data.preprocess import PreprocessConfig, preprocess_video
from sora_tta.models.text import save_prompt_embedding
from sora_tta.prompts import NEGATIVE_FILE, prompt_file

PROMPT = "a person playing guitar"
OLD = 1_000_000_000_000_000_000  # an mtime (ns) long before the test runs


def write_prompt(folder: Path, prompt: str = PROMPT) -> Path:
    name = prompt_file(prompt)
    path = folder / name
    save_prompt_embedding(path, prompt, torch.zeros(1, 77, 64), torch.zeros(1, 32))
    return path


def set_time(path: Path, ns: int) -> None:
    os.utime(path, ns=(ns, ns))


# ---------------------------------------------------------------- single files
def test_method_file_problem(tmp_path):
    path = tmp_path / "m.json"
    settings = {"method": "m", "sampling": {"num_steps": 4}}
    path.write_text(json.dumps(settings))
    assert I.method_file_problem(path, settings) is None
    path.write_text("garbage{")
    assert "not valid JSON" in I.method_file_problem(path, settings)
    path.write_text(json.dumps({**settings, "method": "other"}))
    assert "differs" in I.method_file_problem(path, settings)


def test_prompt_file_problem(tmp_path):
    path = write_prompt(tmp_path)
    assert I.prompt_file_problem(path) is None
    assert I.prompt_file_problem(write_prompt(tmp_path, "")) is None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in I.prompt_file_problem(path)
    path.write_bytes(b"\x01")
    assert "not a readable safetensors" in I.prompt_file_problem(path)
    wrong = tmp_path / "0123456789abcdef.safetensors"
    wrong.write_bytes(data)
    assert "belongs in" in I.prompt_file_problem(wrong)


def test_prompt_file_problem_shapes(tmp_path):
    path = tmp_path / prompt_file(PROMPT)
    from safetensors.torch import save_file

    save_file({"txt": torch.zeros(5, 8), "y_vec": torch.zeros(1, 4)}, str(path), {"prompt": PROMPT})
    assert "'txt' has shape [5, 8]" in I.prompt_file_problem(path)


@pytest.fixture
def clip_pair(tmp_path, clip_maker) -> tuple[Path, Path, Path]:
    """A source video and its clip + sidecar, as the preprocess rule writes them."""
    source = clip_maker.write(tmp_path / "source.mkv", clip_maker.moving(0, frames=12))
    clip, sidecar = tmp_path / "clips" / "v.mkv", tmp_path / "clips" / "v.json"
    config = PreprocessConfig(num_frames=9, height=32, width=48, expected_size=None)
    preprocess_video(source, clip, config, sidecar=sidecar)
    return source, clip, sidecar


def test_clip_problem(clip_pair):
    _, clip, sidecar = clip_pair
    assert I.clip_problem(clip, sidecar)[0] is None
    info = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**info, "num_frames": 10}))
    assert "decodes to 9 frames, its sidecar says 10" in I.clip_problem(clip, sidecar)[0]
    sidecar.write_text(json.dumps({**info, "frames_sha256": "0" * 64}))
    assert "frames_sha256" in I.clip_problem(clip, sidecar)[0]
    sidecar.write_text(json.dumps(info))
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) // 2])
    assert I.clip_problem(clip, sidecar)[0] is not None
    sidecar.write_text("{")
    reason, content = I.clip_problem(clip, sidecar)
    assert "sidecar" in reason and content is None


def test_restore_time(tmp_path):
    path, consumer, source = tmp_path / "x", tmp_path / "y", tmp_path / "z"
    for p in (path, consumer, source):
        p.write_text("")
    set_time(consumer, OLD + 10)
    set_time(source, OLD)
    assert I.restore_time(path, [consumer, tmp_path / "absent"], [source])
    assert path.stat().st_mtime_ns == OLD + 10
    set_time(source, OLD + 20)  # an input newer than the consumers: the results are stale
    path.touch()
    assert not I.restore_time(path, [consumer], [source])
    assert not I.restore_time(tmp_path / "x", [tmp_path / "absent"])


def test_verified_cache(tmp_path):
    target = tmp_path / "f"
    target.write_text("a")
    cache = I.VerifiedCache(tmp_path / "cache.json")
    cache.mark(target)
    cache.save()
    assert I.VerifiedCache(tmp_path / "cache.json").is_verified(target)
    target.write_text("ab")
    assert not I.VerifiedCache(tmp_path / "cache.json").is_verified(target)


# ---------------------------------------------------------------- the preflight pass
def study(tmp_path: Path, source: Path) -> I.Intermediates:
    res = tmp_path / "results"
    layout = I.Layout(
        method_file=f"{res}/methods/{{method}}.json",
        clip=f"{res}/clips/{{video}}.mkv",
        sidecar=f"{res}/clips/{{video}}.json",
        prompt_dir=f"{res}/prompts",
        generation_dir=f"{res}/generations/{{method}}/{{video}}",
        metrics=f"{res}/metrics/{{method}}/{{class_name}}.json",
        verified=f"{res}/{I.VERIFIED_FILE}",
    )
    command = (sys.executable, "-m", "sora_tta.cli", "preprocess", "--num-frames", "9",
               "--height", "32", "--width", "48", "--expected-size", "any")  # fmt: skip
    return I.Intermediates(
        layout=layout,
        methods={"baseline": {"method": "baseline"}},
        videos={"v": I.Video("C", str(source), prompt_file(PROMPT))},
        preprocess_command=command,
    )


@pytest.fixture
def results(tmp_path, clip_pair) -> I.Intermediates:
    """A finished one-video study whose results are all older than its intermediates."""
    source, clip, _ = clip_pair
    res = tmp_path / "results"
    res.mkdir()
    os.replace(clip.parent, res / "clips")
    inter = study(tmp_path, source)
    I.write_json_atomic(res / "methods" / "baseline.json", {"method": "baseline"})
    write_prompt(res / "prompts")
    write_prompt(res / "prompts", "")
    set_time(res / "prompts" / NEGATIVE_FILE, OLD + 60)
    gen = res / "generations" / "baseline" / "v"
    gen.mkdir(parents=True)
    for name in ("video.mkv", "meta.json"):
        (gen / name).write_text(name)
        set_time(gen / name, OLD + 100)
    (res / "metrics" / "baseline").mkdir(parents=True)
    (res / "metrics" / "baseline" / "C.json").write_text("{}")
    set_time(res / "metrics" / "baseline" / "C.json", OLD + 200)
    set_time(source, OLD)
    return inter


def test_intact_study_is_left_alone(results):
    before = {p: p.stat().st_mtime_ns for p in Path(results.layout.prompt_dir).parent.rglob("*")}
    report = I.check_intermediates(results)
    assert report.repaired == [] and report.unrepaired == []
    after = {p: p.stat().st_mtime_ns for p in before}
    assert after == before
    assert Path(results.layout.verified).is_file()


def test_garbage_method_file_is_rewritten_with_the_results_time(results):
    path = Path(results.layout.method_file.format(method="baseline"))
    path.write_text("garbage")
    report = I.check_intermediates(results)
    assert [p.path for p in report.repaired] == [str(path)]
    assert json.loads(path.read_text()) == {"method": "baseline"}
    assert path.stat().st_mtime_ns == OLD + 100  # not newer than the generation


def test_dry_run_writes_nothing(results):
    path = Path(results.layout.method_file.format(method="baseline"))
    path.write_text("garbage")
    report = I.check_intermediates(results, repair=False)
    assert [p.path for p in report.unrepaired] == [str(path)]
    assert path.read_text() == "garbage"


def test_truncated_prompt_stops_the_run_naming_the_repair(results):
    prompts = Path(results.layout.prompt_dir)
    path = prompts / prompt_file(PROMPT)
    path.write_bytes(path.read_bytes()[:100])
    report = I.check_intermediates(results)
    assert [p.path for p in report.unrepaired] == [str(path)]
    assert "--forcerun encode_prompts" in report.message()
    assert I.read_restore_times(prompts) == {path.name: OLD + 100}
    forced = I.check_intermediates(results, prompts_forced=True)
    assert [p.path for p in forced.repaired] == [str(path)] and forced.unrepaired == []


def test_truncated_clip_is_rebuilt_with_the_results_time(results):
    clip = Path(results.layout.clip.format(video="v"))
    good = clip.read_bytes()
    clip.write_bytes(good[: len(good) // 2])
    report = I.check_intermediates(results)
    assert [p.path for p in report.repaired] == [str(clip)]
    assert "same frames" in report.repaired[0].action
    assert I.clip_problem(clip, results.layout.sidecar.format(video="v"))[0] is None
    assert clip.stat().st_mtime_ns == OLD + 100
    assert not list(clip.parent.glob(".*rebuild*"))


def test_clip_without_its_source_stops_the_run_naming_both(results):
    clip = Path(results.layout.clip.format(video="v"))
    clip.write_bytes(b"not a video")
    os.unlink(results.videos["v"].source)
    report = I.check_intermediates(results)
    assert report.repaired == []
    message = report.message()
    assert str(clip) in message and results.videos["v"].source in message
    assert "rm " in message and clip.read_bytes() == b"not a video"


def test_deleted_prompt_is_named_only_when_results_depend_on_it(results):
    prompts = Path(results.layout.prompt_dir)
    path = prompts / prompt_file(PROMPT)
    path.unlink()
    report = I.check_intermediates(results)
    assert [(p.path, p.reason) for p in report.unrepaired] == [(str(path), "missing")]
    assert I.read_restore_times(prompts) == {path.name: OLD + 100}
    shutil.rmtree(Path(results.layout.generation_dir.format(method="baseline", video="v")))
    assert I.check_intermediates(results).unrepaired == []


def test_deleted_clip_is_rebuilt_with_the_results_time(results):
    clip = Path(results.layout.clip.format(video="v"))
    good = clip.read_bytes()
    clip.unlink()
    report = I.check_intermediates(results)
    assert [(p.path, p.reason) for p in report.repaired] == [(str(clip), f"missing ({clip})")]
    assert clip.read_bytes() == good  # bit-exact rebuild
    assert clip.stat().st_mtime_ns == OLD + 100


def test_generation_without_its_video_is_done_again(results):
    folder = Path(results.layout.generation_dir.format(method="baseline", video="v"))
    (folder / "video.mkv").unlink()
    report = I.check_intermediates(results)
    assert [p.path for p in report.repaired] == [
        str(folder / "video.mkv"),
        str(folder / "meta.json"),
    ]
    assert not (folder / "meta.json").exists()
    assert not Path(results.layout.metrics.format(method="baseline", class_name="C")).exists()


def test_failed_generation_is_a_result(results):
    folder = Path(results.layout.generation_dir.format(method="baseline", video="v"))
    (folder / "video.mkv").unlink()
    (folder / "meta.json").write_text('{"outcome": "failed"}')
    assert I.check_intermediates(results).repaired == []
    assert (folder / "meta.json").exists()


def with_tables(results: I.Intermediates, tmp_path: Path) -> I.Intermediates:
    """The study with its tables and figures, newer than the metrics."""
    res = tmp_path / "results"
    tables, figures = res / "aggregate" / "summary.csv", res / "figures" / "plot.png"
    for path in (tables, figures):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
        set_time(path, OLD + 300)
    layout = dataclasses.replace(
        results.layout, aggregate_files=(str(tables),), final_files=(str(figures),)
    )
    return dataclasses.replace(results, layout=layout)


@pytest.mark.parametrize("victim", ["generation", "metrics", "tables"])
def test_missing_result_marks_what_was_built_from_it_outdated(results, tmp_path, victim):
    inter = with_tables(results, tmp_path)
    res = tmp_path / "results"
    consumer = {
        "generation": res / "metrics" / "baseline" / "C.json",
        "metrics": res / "aggregate" / "summary.csv",
        "tables": res / "figures" / "plot.png",
    }[victim]
    gone = {
        "generation": res / "generations" / "baseline" / "v",
        "metrics": res / "metrics" / "baseline" / "C.json",
        "tables": res / "aggregate" / "summary.csv",
    }[victim]
    assert I.check_intermediates(inter, repair=False).unrepaired == []
    shutil.rmtree(gone) if gone.is_dir() else gone.unlink()
    dry = I.check_intermediates(inter, repair=False)
    assert [p.reason for p in dry.unrepaired] == ["missing"]
    assert consumer.exists()
    report = I.check_intermediates(inter)
    assert [p.reason for p in report.repaired] == ["missing"]
    assert not consumer.exists() and not (res / "figures" / "plot.png").exists()
    assert (res / "clips" / "v.mkv").exists()  # upstream results stay


def test_a_method_is_checked_only_on_the_videos_it_runs_on(results, tmp_path):
    """An exploratory variant runs on validation videos only: its absence on the test
    video is not a missing result, and no table built without it is removed."""
    inter = with_tables(results, tmp_path)
    explore = {"method": "explore"}
    inter = dataclasses.replace(
        inter, methods={**inter.methods, "explore": explore}, method_videos={"explore": ()}
    )
    I.write_json_atomic(tmp_path / "results" / "methods" / "explore.json", explore)
    assert inter.videos_of("explore") == [] and inter.videos_of("baseline") == ["v"]
    report = I.check_intermediates(inter)
    assert report.repaired == [] and report.unrepaired == []
    assert (tmp_path / "results" / "aggregate" / "summary.csv").exists()
    with_all = dataclasses.replace(inter, method_videos={})
    dry = I.check_intermediates(with_all, repair=False)
    assert {p.reason for p in dry.unrepaired} == {"missing"}  # the same study, checked on all


def test_source_listing_changes_only_with_the_sources(tmp_path):
    root, out = tmp_path / "UCF-101", tmp_path / "results" / "sources.json"
    (root / "A").mkdir(parents=True)
    (root / "A" / "v_A_g01_c01.avi").write_bytes(b"x")
    assert I.update_source_listing(root, out)
    stamp = out.stat().st_mtime_ns
    assert not I.update_source_listing(root, out) and out.stat().st_mtime_ns == stamp
    (root / "A" / "v_A_g02_c01.avi").write_bytes(b"y")  # a video added
    assert I.update_source_listing(root, out)
    assert sorted(json.loads(out.read_text())) == ["A/v_A_g01_c01.avi", "A/v_A_g02_c01.avi"]
    (root / "A" / "v_A_g01_c01.avi").unlink()  # and one removed
    assert I.update_source_listing(root, out)
    assert list(json.loads(out.read_text())) == ["A/v_A_g02_c01.avi"]
