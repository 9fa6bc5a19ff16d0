"""``sora-tta`` subcommands of the data area: manifest, preprocess."""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sora_tta.cli import CommandError
from sora_tta.cli_options import non_negative_int, positive_float, positive_int

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def multiple_of_16(text: str) -> int:
    """argparse type: a positive multiple of 16 (the VAE x patch stride)."""
    value = positive_int(text)
    if value % 16:
        raise argparse.ArgumentTypeError(f"{value} is not a multiple of 16")
    return value


def frame_size(text: str) -> tuple[int, int] | None:
    """argparse type: ``WIDTHxHEIGHT`` or ``any`` (no check)."""
    if text.lower() == "any":
        return None
    match = re.fullmatch(r"(\d+)x(\d+)", text.lower())
    if match is None or int(match[1]) < 1 or int(match[2]) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT (e.g. 320x240) or 'any'")
    return int(match[1]), int(match[2])


def _add_size_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--expected-size",
        type=frame_size,
        default=(320, 240),
        metavar="WxH",
        help="source frame size a usable video must have, or 'any' (default: 320x240)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the data subcommands to the ``sora-tta`` parser."""
    _register_manifest(subparsers)
    _register_preprocess(subparsers)


def _register_manifest(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "manifest",
        help="select UCF-101 videos, caption them and probe them into a manifest CSV",
        description=(
            "Select videos of one official split/subset (all, --per-class N or --total N, "
            "optionally at most --max-per-group K clips per group, optionally only those in "
            "--list), caption them and check each file from its container metadata. Writes one "
            "CSV row per selected video with status ok, too_short, unreadable, missing or "
            "bad_size and a reason; bad files never stop the run."
        ),
    )
    p.add_argument("--ucf-root", type=Path, required=True, help="folder holding <Class>/v_*.avi")
    p.add_argument(
        "--splits-dir", type=Path, required=True, help="folder holding classInd.txt and the lists"
    )
    p.add_argument(
        "--split", type=int, choices=(1, 2, 3), default=1, help="official split (default 1)"
    )
    p.add_argument(
        "--subset", choices=("test", "train"), default="test", help="subset (default test)"
    )
    count = p.add_mutually_exclusive_group()
    count.add_argument(
        "--per-class", type=positive_int, help="stratified sample: N videos per class"
    )
    count.add_argument(
        "--total", type=positive_int, help="stratified sample: N videos spread over classes"
    )
    p.add_argument(
        "--max-per-group", type=positive_int, help="at most K clips of the same group gNN"
    )
    p.add_argument(
        "--list", type=Path, dest="list_file", help="only videos named in this file (ids or paths)"
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="selection seed (default 0)")
    val = p.add_argument_group(
        "validation selection",
        "videos exploration runs on, never from a UCF-101 group of the test list (rows with "
        "role 'validation'); none without --validation-subset",
    )
    val.add_argument(
        "--validation-subset",
        choices=("test", "train"),
        default=None,
        help="split list the validation videos come from (train: trainlist0N)",
    )
    val.add_argument(
        "--validation-split",
        type=int,
        choices=(1, 2, 3),
        default=None,
        help="UCF-101 split of the validation list (default: --split)",
    )
    val_count = val.add_mutually_exclusive_group()
    val_count.add_argument(
        "--validation-per-class", type=positive_int, help="validation videos per class"
    )
    val_count.add_argument(
        "--validation-total",
        type=positive_int,
        help="validation videos in all, stratified over classes",
    )
    val.add_argument(
        "--validation-max-per-group",
        type=positive_int,
        help="at most this many validation clips of one UCF-101 group",
    )
    p.add_argument(
        "--caption-template",
        default=None,
        help="caption template with {action} and/or {class_name} (default: '{action}')",
    )
    p.add_argument(
        "--caption-overrides", type=Path, help="YAML or TSV: class name or video id -> caption"
    )
    p.add_argument(
        "--start-frame", type=non_negative_int, default=0, help="first frame used (default 0)"
    )
    p.add_argument("--num-frames", type=positive_int, default=65, help="frames used (default 65)")
    p.add_argument(
        "--min-frames",
        type=positive_int,
        help="frames a video needs to be ok (default: start frame + num frames)",
    )
    _add_size_check(p)
    p.add_argument(
        "--decode-check", action="store_true", help="also decode the needed frames (slower)"
    )
    p.add_argument("--jobs", type=positive_int, default=1, help="probing threads (default 1)")
    p.add_argument(
        "--exclude",
        type=_exclusions,
        default={},
        metavar="JSON",
        help='videos to leave out, with reasons: {"v_X_g01_c01": "why"} (status excluded)',
    )
    p.add_argument("--out", type=Path, required=True, help="manifest CSV to write")
    p.set_defaults(func=_run_manifest)


def _exclusions(text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err})") from err
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise argparse.ArgumentTypeError("expected a JSON object {video id: reason}")
    return data


def _run_manifest(args: argparse.Namespace) -> int:
    import pandas as pd

    from sora_tta.data.captions import DEFAULT_TEMPLATE, Captioner, CaptionError, read_overrides
    from sora_tta.data.manifest import (
        ROLE_VALIDATION,
        ProbeSettings,
        build_manifest,
        exclude_videos,
        write_manifest,
    )
    from sora_tta.data.ucf101 import (
        SelectionConfig,
        SplitError,
        load_split,
        read_class_index,
        read_list_file,
        select_videos,
    )

    if not args.ucf_root.is_dir():
        raise CommandError(f"{args.ucf_root}: UCF-101 video folder not found")
    if not args.splits_dir.is_dir():
        raise CommandError(f"{args.splits_dir}: split folder not found")
    try:
        classes = read_class_index(args.splits_dir / "classInd.txt")
        entries = test_list = load_split(args.splits_dir, args.split, args.subset)
        if args.list_file is not None:
            entries = read_list_file(args.list_file, entries)
        overrides = {}
        if args.caption_overrides is not None:
            overrides = read_overrides(args.caption_overrides, list(classes))
        captioner = Captioner(args.caption_template or DEFAULT_TEMPLATE, overrides)
        selection = SelectionConfig(args.per_class, args.total, args.max_per_group, args.seed)
        chosen = select_videos(entries, selection)
        validation = _validation_selection(args, test_list, chosen)
    except (SplitError, CaptionError) as err:
        raise CommandError(str(err)) from err
    except ValueError as err:
        raise CommandError(f"{args.splits_dir}: {err}") from err
    check_class_folders(args.ucf_root, list(classes))
    min_frames = args.min_frames or args.start_frame + args.num_frames
    settings = ProbeSettings(min_frames, args.expected_size, args.decode_check, args.jobs)
    frame = build_manifest(chosen, args.ucf_root, captioner, args.split, args.subset, settings)
    if validation is not None:
        split, subset, videos = validation
        rows = build_manifest(
            videos, args.ucf_root, captioner, split, subset, settings, role=ROLE_VALIDATION
        )
        frame = pd.concat([frame, rows], ignore_index=True)
        duplicated = frame["video_id"][frame["video_id"].duplicated()]
        if not duplicated.empty:
            raise CommandError(f"video {duplicated.iloc[0]} is selected for validation and test")
    frame = exclude_videos(frame, args.exclude)
    check_usable(frame, args.ucf_root)
    try:
        write_manifest(frame, args.out)
    except OSError as err:
        raise CommandError(f"{args.out}: cannot write ({err.strerror or err})") from err
    counts = frame["status"].value_counts().to_dict()
    log.info(
        "%s: %d videos (%s)",
        args.out,
        len(frame),
        ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
    )
    return 0


def _validation_selection(
    args: argparse.Namespace, test_list: list[Any], test_chosen: list[Any]
) -> tuple[int, str, list[Any]] | None:
    """``(split, subset, videos)`` of the validation selection, or None when not asked for.

    Candidates come from ``--validation-split``/``--validation-subset`` (default: the test
    selection's split); groups of the whole test list are excluded and the result is
    checked to share no group with the chosen test videos.
    """
    from sora_tta.data.ucf101 import (
        SelectionConfig,
        check_disjoint_groups,
        load_split,
        select_validation,
    )

    if args.validation_subset is None:
        given = [
            name
            for name in ("split", "per_class", "total", "max_per_group")
            if getattr(args, f"validation_{name}") is not None
        ]
        if given:
            flags = ", ".join(f"--validation-{n.replace('_', '-')}" for n in given)
            raise ValueError(f"{flags} needs --validation-subset")
        return None
    split = args.validation_split or args.split
    candidates = load_split(args.splits_dir, split, args.validation_subset)
    config = SelectionConfig(
        args.validation_per_class,
        args.validation_total,
        args.validation_max_per_group,
        args.seed,
    )
    videos = select_validation(candidates, test_list, config)
    check_disjoint_groups(videos, test_chosen)
    return split, args.validation_subset, videos


def check_class_folders(ucf_root: Path, classes: list[str]) -> None:
    """Fail with a hint when ``ucf_root`` holds none of the class folders of classInd.txt
    (typically ``data.ucf_root`` one folder too high or too low)."""
    if any((ucf_root / name).is_dir() for name in classes):
        return
    example = ucf_root / classes[0]
    nested = [p for p in sorted(ucf_root.iterdir()) if p.is_dir() and (p / classes[0]).is_dir()]
    hint = f"; did you mean --ucf-root {nested[0]}?" if nested else ""
    raise CommandError(
        f"{ucf_root}: none of the {len(classes)} class folders of classInd.txt is here "
        f"(expected e.g. {example}/); set data.ucf_root to the folder that holds the class "
        f"folders (the extracted UCF-101/){hint}"
    )


def check_usable(frame: pd.DataFrame, ucf_root: Path) -> None:
    """Fail, before any prompt or generation job, when no selected video is usable."""
    if (frame["status"] == "ok").any():
        return
    counts = frame["status"].value_counts().to_dict()
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no rows"
    first = frame.iloc[0] if len(frame) else None
    example = f"; first: {first['source_path']} ({first['reason']})" if first is not None else ""
    raise CommandError(
        f"{ucf_root}: no selected video is usable ({summary}){example}; "
        f"expected the videos as {ucf_root}/<Class>/v_<Class>_gNN_cMM.avi"
    )


def _register_preprocess(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "preprocess",
        help="cut, resize and center-crop one video into a lossless ground-truth clip",
        description=(
            "Decode --num-frames consecutive frames from --start-frame, resize them "
            "(antialiased) to cover HEIGHTxWIDTH, center-crop, and store them losslessly "
            "(FFV1 in MKV) at the source frame rate (or --fps, by nearest-frame selection). "
            "Writes a JSON sidecar next to the clip unless --no-sidecar."
        ),
    )
    p.add_argument("--input", type=Path, required=True, help="source video")
    p.add_argument("--output", type=Path, required=True, help="clip to write (.mkv)")
    p.add_argument(
        "--start-frame", type=non_negative_int, default=0, help="first frame (default 0)"
    )
    p.add_argument(
        "--num-frames", type=positive_int, default=65, help="frames to keep (default 65)"
    )
    p.add_argument(
        "--height",
        type=multiple_of_16,
        default=224,
        help="output height, multiple of 16 (default 224)",
    )
    p.add_argument(
        "--width",
        type=multiple_of_16,
        default=288,
        help="output width, multiple of 16 (default 288)",
    )
    p.add_argument(
        "--fps", type=positive_float, help="resample time to this frame rate (default: keep)"
    )
    p.add_argument(
        "--resample",
        choices=("bicubic", "bilinear", "lanczos", "area"),
        default="bicubic",
        help="spatial filter (default bicubic, antialiased)",
    )
    _add_size_check(p)
    p.add_argument("--sidecar", type=Path, help="JSON sidecar path (default: OUTPUT with .json)")
    p.add_argument("--no-sidecar", action="store_true", help="do not write the JSON sidecar")
    p.set_defaults(func=_run_preprocess)


def _run_preprocess(args: argparse.Namespace) -> int:
    from sora_tta.data.preprocess import PreprocessConfig, PreprocessError, preprocess_video

    if args.output.suffix.lower() != ".mkv":
        raise CommandError(f"{args.output}: output must be an .mkv file (FFV1 in Matroska)")
    sidecar = None if args.no_sidecar else (args.sidecar or args.output.with_suffix(".json"))
    config = PreprocessConfig(
        start_frame=args.start_frame,
        num_frames=args.num_frames,
        height=args.height,
        width=args.width,
        fps=args.fps,
        resample=args.resample,
        expected_size=args.expected_size,
    )
    try:
        info = preprocess_video(args.input, args.output, config, sidecar)
    except PreprocessError as err:
        raise CommandError(str(err)) from err
    except OSError as err:
        raise CommandError(f"{args.output}: cannot write ({err.strerror or err})") from err
    log.info(
        "%s: %d frames %dx%d at %.3f fps",
        args.output,
        info["num_frames"],
        info["width"],
        info["height"],
        info["fps"],
    )
    return 0
