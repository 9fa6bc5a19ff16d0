"""Unit tests of sora_tta.study.paths: data and checkpoint paths of the shipped configurations."""

from __future__ import annotations

from sora_tta.study import config as study_config
from sora_tta.study import (
    options,
    paths,
)

SCHEMA = study_config.load_schema()


def test_paths_and_manifest_options(shipped_config):
    demo = shipped_config("demo.yaml")
    data = paths.data_paths(demo)
    assert data.ucf_root == "results/demo/ucf101/UCF-101"
    assert data.splits_dir == "results/demo/ucf101/ucfTrainTestlist"
    real = shipped_config("config.yaml")
    assert paths.split_list_files(real) == [
        "data/ucfTrainTestlist/classInd.txt",
        "data/ucfTrainTestlist/testlist01.txt",
        "data/ucfTrainTestlist/trainlist01.txt",  # the validation selection's candidates
    ]
    assert options.manifest_options(real) == (
        "--total 100 --max-per-group 1 --decode-check --validation-subset train"
        " --validation-total 50 --validation-max-per-group 1"
    )
    real["selection"]["caption_overrides"] = "my captions.yaml"
    assert "--caption-overrides 'my captions.yaml'" in options.manifest_options(real)
    ckpt = paths.checkpoint_paths(real)
    assert ckpt.mmdit == "ckpts/Open_Sora_v2.safetensors"
    assert ckpt.clip == "ckpts/openai/clip-vit-large-patch14"


def test_demo_builds_the_novel_world_and_copies_the_proxy(shipped_config):
    """The demo's data and checkpoints: the commands the DAG runs, parsed by the real CLI."""
    import shlex

    from sora_tta.cli import build_parser

    demo = shipped_config("demo.yaml", defaults=True)
    assert paths.built_checkpoints(demo) == "proxy"
    command = shlex.split(options.synthetic_data_args(demo, "out dir"))
    args = build_parser().parse_args(command)
    assert command[0] == "make-world" and args.distribution == "novel"
    assert (args.out.as_posix(), args.classes, args.per_class, args.clips_per_group) == (
        "out dir",
        3,
        2,
        1,
    )
    assert args.broken and args.frames >= demo["sampling"]["num_frames"]
    # the manifest's captions: the world's, unless the user gives their own
    assert "--caption-overrides results/demo/ucf101/captions.tsv" in options.manifest_options(demo)
    demo["selection"]["caption_overrides"] = "mine.tsv"
    assert "--caption-overrides mine.tsv" in options.manifest_options(demo)
    # the plane-wave stand-in and the tiny family (what tests use for arbitrary shapes)
    demo["data"]["synthetic"]["world"] = None
    demo["data"]["synthetic"]["broken"] = False
    command = shlex.split(options.synthetic_data_args(demo, "o"))
    assert command[:2] == ["make-synthetic-ucf101", "o"] and "--no-broken" in command
    build_parser().parse_args(command)
    assert paths.world_captions(demo) is None
    demo["checkpoints"] = {"dir": "c", "tiny": {"seed": 0}}
    assert paths.built_checkpoints(demo) == "tiny"
    demo["checkpoints"]["proxy"] = True
    assert (
        "checkpoints: tiny and proxy are exclusive; set at most one"
        in study_config.config_problems(demo, SCHEMA)
    )
    del demo["checkpoints"]["tiny"]
    demo["checkpoints"]["proxy"] = False
    assert paths.built_checkpoints(demo) is None
