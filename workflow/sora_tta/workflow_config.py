"""Configuration helpers of the Snakemake workflow: validation, derived paths, preflight.

Everything here is pure Python without torch, so the workflow can import it while it parses
(``workflow/rules/common.smk``) and the unit tests can exercise it directly:

- :func:`config_problems` lists every invalid value of a configuration (JSON schema plus
  the cross-field rules a schema cannot express), one readable line each;
- :func:`profile_resources` reads each rule's threads / memory / runtime / GPUs from the
  workflow profile (``profiles/default/config.yaml``, their one definition);
- :func:`required_files` and :func:`missing_requirements` are the preflight check: every
  checkpoint, tokenizer, data and metric-weight file the configuration needs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sora_tta.layout import CLIP_DIR, MMDIT_FILE, T5_DIR, VAE_FILE, WORLD_CAPTIONS_FILE
from sora_tta.models.compile import compile_mode
from sora_tta.variants import kinds_from_schema

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"

#: Layout of a checkpoint folder (the real ``ckpts/`` and the tiny family alike).
TINY_FAMILY_FILE = "tiny_family.json"
#: Any one of these holds a Hugging Face model's weights.
HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
#: Tokenizer files: a fast tokenizer.json, or the slow tokenizer's own files.
T5_TOKENIZER_FILES = (("tokenizer.json",), ("spiece.model",))
CLIP_TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem on its own line."""


def load_schema(path: str | os.PathLike[str] = SCHEMA_PATH) -> dict[str, Any]:
    """Read the workflow's JSON schema (YAML)."""
    with open(path) as handle:
        return yaml.safe_load(handle)


def _location(path: Iterable[Any]) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in path]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _location(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f"; valid keys: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key(s) {', '.join(map(repr, extra))}{hint}"
    description = error.schema.get("description") if isinstance(error.schema, Mapping) else None
    message = f"{where}: {error.message}"
    if description:
        message += f" ({' '.join(str(description).split())})"
    if error.validator == "type" and _looks_like_exponent(error.instance):
        message += (
            f"; YAML 1.1, which Snakemake reads, takes {error.instance!r} for a string: "
            "write the exponent with a dot and a sign (1.0e+10) or the plain number"
        )
    return message


def _looks_like_exponent(value: Any) -> bool:
    if not isinstance(value, str) or "e" not in value.lower():
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


#: Configuration keys holding paths (read, or written by the demo's rules).
PATH_KEYS = (
    ("data", "ucf_root"),
    ("data", "splits_dir"),
    ("data", "synthetic", "out"),
    ("checkpoints", "dir"),
    ("selection", "list"),
    ("selection", "caption_overrides"),
    ("evaluation", "fvd_weights"),
)


def outside_paths(
    config: Mapping[str, Any], workdir: str | os.PathLike[str] | None = None
) -> list[str]:
    """The path keys of ``config`` that lead outside ``workdir`` (default: the current
    folder, which is Snakemake's --directory), as problem lines."""
    root = Path(workdir or os.getcwd()).resolve()
    problems = []
    for keys in PATH_KEYS:
        value: Any = config
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        if not isinstance(value, str) or not value:
            continue
        resolved = (root / value).resolve()
        if resolved != root and root not in resolved.parents:
            problems.append(
                f"{'.'.join(keys)}: {value!r} is outside the working directory {root} "
                "(set allow_paths_outside_workdir: true if that is intended)"
            )
    return problems


def schema_problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every JSON-schema violation of ``config`` as one line naming the key."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    return [_describe(error) for error in errors]


def _is_4k_plus_1(value: Any) -> bool:
    return isinstance(value, int) and value >= 1 and (value - 1) % 4 == 0


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = config.get(name)
    return value if isinstance(value, Mapping) else {}


def semantic_problems(config: Mapping[str, Any]) -> list[str]:
    """Cross-field rules the schema cannot express (values of the wrong type are skipped:
    the schema reports those)."""
    problems = []
    data = _section(config, "data")
    if data.get("synthetic"):
        for key in ("ucf_root", "splits_dir"):
            if data.get(key):
                problems.append(
                    f"data.{key}: leave unset with data.synthetic (the synthetic set defines it)"
                )
    else:
        for key in ("ucf_root", "splits_dir"):
            if not data.get(key):
                problems.append(f"data.{key}: required (or set data.synthetic for the demo)")
    checkpoints = _section(config, "checkpoints")
    if checkpoints.get("tiny") is not None and checkpoints.get("proxy") is True:
        problems.append("checkpoints: tiny and proxy are exclusive; set at most one")
    selection = _section(config, "selection")
    if selection.get("per_class") is not None and selection.get("total") is not None:
        problems.append("selection: per_class and total are exclusive; set at most one")
    validation = selection.get("validation") or {}
    if validation.get("per_class") is not None and validation.get("total") is not None:
        problems.append("selection.validation: per_class and total are exclusive; set at most one")
    sampling = _section(config, "sampling")
    for key in ("num_cond_frames", "num_frames"):
        if key in sampling and not _is_4k_plus_1(sampling[key]):
            problems.append(f"sampling.{key}: must be 4k + 1 (1, 5, 9, ...), got {sampling[key]}")
    cond, total = sampling.get("num_cond_frames"), sampling.get("num_frames")
    if isinstance(cond, int) and isinstance(total, int) and cond >= total:
        problems.append(f"sampling.num_cond_frames ({cond}) must be below num_frames ({total})")
    smoke = _section(config, "smoke")
    for key in ("frames", "cond_frames"):
        if key in smoke and not _is_4k_plus_1(smoke[key]):
            problems.append(f"smoke.{key}: must be 4k + 1, got {smoke[key]}")
    cond, total = smoke.get("cond_frames"), smoke.get("frames")
    if isinstance(cond, int) and isinstance(total, int) and cond >= total:
        problems.append(f"smoke.cond_frames ({cond}) must be below smoke.frames ({total})")
    adapt = _section(config, "adapt")
    problems += [f"adapt: {p}" for p in adapt_cross_field_problems(adapt)]
    if config.get("allow_paths_outside_workdir") is not True:
        problems += outside_paths(config)
    window = _section(config, "sampling").get("num_cond_frames", 33)
    lengths = adapt.get("continue_frames")
    if isinstance(window, int) and _is_4k_plus_1(window) and isinstance(lengths, list):
        latent = (window - 1) // 4 + 1
        too_long = [k for k in lengths if isinstance(k, int) and k >= latent]
        if too_long:
            problems.append(
                f"adapt.continue_frames: {too_long} leave no loss frame in the {latent} latent "
                f"frames of sampling.num_cond_frames={window} (each k must be below {latent})"
            )
    if "resources" in config:
        problems.append(
            "resources: per-rule threads, memory, runtime and GPUs are set in the workflow "
            "profile profiles/default/config.yaml (set-threads, set-resources), not here"
        )
    return problems


def adapt_cross_field_problems(params: Mapping[str, Any]) -> list[str]:
    """Rules between adaptation parameters (warm-up within the steps, sensible mixed weights)."""
    problems = []
    steps, warmup = params.get("steps"), params.get("warmup_steps")
    if isinstance(steps, int) and isinstance(warmup, int) and warmup > steps:
        problems.append(f"warmup_steps ({warmup}) must not exceed steps ({steps})")
    weights = params.get("mixed_weights")
    positive = isinstance(weights, Mapping) and any(
        isinstance(w, (int, float)) and w > 0 for w in weights.values()
    )
    if params.get("mode") == "mixed" and not positive:
        problems.append("mixed_weights: at least one weight must be > 0 in mixed mode")
    return problems


def config_problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """All problems of a configuration: schema violations first, then cross-field rules."""
    return schema_problems(config, schema) + semantic_problems(config)


def check_config(
    config: Mapping[str, Any],
    schema: Mapping[str, Any],
    source: str = "config",
) -> None:
    """Raise :class:`ConfigError` listing every problem of ``config`` (none: return)."""
    problems = config_problems(config, schema)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"invalid configuration ({source}), {len(problems)} problem(s):\n{lines}")


COMMAND_LINE = "--config on the command line"


def format_overrides(overrides: Mapping[str, Any], prefix: str = "") -> str:
    """``--config`` values as ``key.sub=value`` items, for messages."""
    items = []
    for key, value in overrides.items():
        where = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.append(format_overrides(value, f"{where}."))
        else:
            items.append(f"{where}={value}")
    return ", ".join(items)


def _subschema(schema: Mapping[str, Any], root: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The schema of ``key`` inside an object schema (properties, then additionalProperties)."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    props = schema.get("properties", {})
    if key in props:
        return props[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, Mapping) else {}


def _coerce(text: str, schema: Mapping[str, Any]) -> Any:
    """``text`` as the schema's type (Snakemake hands nested --config values over as text)."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    enum = schema.get("enum", [])
    lowered = text.strip().lower()
    if lowered in ("true", "false") and ("boolean" in types or any(e is True for e in enum)):
        return lowered == "true"
    if lowered in ("null", "none", "~") and "null" in types:
        return None
    if "integer" in types:
        try:
            return int(text)
        except ValueError:
            if "number" not in types and "string" not in types:
                raise ValueError(f"{text!r} is not an integer") from None
    if "number" in types:
        try:
            return float(text)
        except ValueError:
            if "string" not in types:
                raise ValueError(f"{text!r} is not a number") from None
    return text


def coerce_overrides(
    config: dict[str, Any],
    overrides: Mapping[str, Any],
    schema: Mapping[str, Any],
    _node: Mapping[str, Any] | None = None,
    _where: str = "",
) -> list[str]:
    """Convert, in ``config``, the text values given with ``--config`` to the schema's types
    (``steps=8`` inside a map arrives as ``'8'``, ``preflight=false`` as ``'false'``).
    Variant parameters (``variants.named.<name>.<param>``) take the ``adapt`` types.
    Returns one problem per value that does not convert, naming the command line."""
    node = schema if _node is None else _node
    problems = []
    for key, value in overrides.items():
        where = f"{_where}.{key}" if _where else str(key)
        sub = _subschema(node, schema, str(key))
        if where.startswith("variants.named.") and where.count(".") == 2:
            sub = schema["properties"]["adapt"]
        if isinstance(value, Mapping) and isinstance(config.get(key), dict):
            problems += coerce_overrides(config[key], value, schema, sub, where)
        elif isinstance(value, str) and key in config:
            try:
                config[key] = _coerce(value, sub)
            except ValueError as err:
                problems.append(f"{where}: {err} ({COMMAND_LINE})")
    return problems


def adapt_param_check(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], list[str]]:
    """Validator of one full adaptation parameter set against the schema's ``adapt`` section."""
    section = schema["properties"]["adapt"]
    validator = jsonschema.Draft202012Validator(
        {"type": "object", "properties": section["properties"], "additionalProperties": False}
    )

    def check(params: Mapping[str, Any]) -> list[str]:
        errors = sorted(validator.iter_errors(dict(params)), key=lambda e: list(e.absolute_path))
        problems = [_describe(e) for e in errors]
        return problems or adapt_cross_field_problems(params)

    return check


def adapt_param_kinds(schema: Mapping[str, Any]) -> dict[str, str]:
    """Parameter -> JSON type of the schema's ``adapt`` section (for normalisation)."""
    return kinds_from_schema(schema["properties"]["adapt"]["properties"])


#: The workflow profile Snakemake loads by itself (``profiles/default/``).
WORKFLOW_PROFILE = Path(__file__).resolve().parents[2] / "profiles" / "default" / "config.yaml"


@dataclass(frozen=True)
class RuleResources:
    """What one job of a rule asks for; ``runtime`` (minutes) is that of the first attempt."""

    threads: int
    mem_mb: int
    runtime: int
    gpu: int = 0


def _first_attempt(value: Any) -> int:
    """An int, or a profile expression in ``attempt`` (``"60 * attempt"``) at attempt 1."""
    if isinstance(value, int):
        return value
    if not re.fullmatch(r"\s*\d+(\s*\*\s*attempt)?\s*", str(value)):
        raise ValueError(f"unsupported resource expression {value!r}")
    return int(str(value).split("*")[0])


def profile_resources(path: str | os.PathLike[str] = WORKFLOW_PROFILE) -> dict[str, RuleResources]:
    """Per-rule resources of the workflow profile (``set-threads`` and ``set-resources``)."""
    with open(path) as handle:
        profile = yaml.safe_load(handle)
    threads = profile.get("set-threads", {})
    resources = profile.get("set-resources", {})
    return {
        rule: RuleResources(
            threads=int(threads.get(rule, 1)),
            mem_mb=_first_attempt(values["mem_mb"]),
            runtime=_first_attempt(values["runtime"]),
            gpu=int(values.get("gpu", 0)),
        )
        for rule, values in resources.items()
    }


def gpu_rules(path: str | os.PathLike[str] = WORKFLOW_PROFILE) -> list[str]:
    """Rules whose jobs ask for a GPU in the workflow profile."""
    return sorted(rule for rule, res in profile_resources(path).items() if res.gpu > 0)


@dataclass(frozen=True)
class DataPaths:
    """Where the raw videos and split lists are; ``synthetic_out`` when built in the DAG."""

    ucf_root: str
    splits_dir: str
    synthetic_out: str | None


def data_paths(config: Mapping[str, Any]) -> DataPaths:
    """Raw-data locations of a validated configuration."""
    data = _section(config, "data")
    synthetic = data.get("synthetic")
    if synthetic:
        out = str(synthetic["out"]).rstrip("/")
        return DataPaths(f"{out}/UCF-101", f"{out}/ucfTrainTestlist", out)
    return DataPaths(str(data["ucf_root"]), str(data["splits_dir"]), None)


def synthetic_data_args(config: Mapping[str, Any], out: str) -> str:
    """``sora-tta`` subcommand and flags that build ``data.synthetic`` into ``out``, shell-quoted:
    ``make-world`` for a procedural world (``world`` set), else ``make-synthetic-ucf101``."""
    synthetic = _section(config, "data")["synthetic"]
    shared = {
        "--classes": synthetic["classes"],
        "--per-class": synthetic["per_class"],
        "--clips-per-group": synthetic["clips_per_group"],
        "--frames": synthetic["frames"],
        "--seed": synthetic["seed"],
    }
    if synthetic.get("world"):
        flags = {"--out": out, "--distribution": synthetic["world"], **shared}
        return "make-world " + _options({**flags, "--broken": bool(synthetic["broken"])})
    flags = {**shared, "--no-broken": not synthetic["broken"]}
    return f"make-synthetic-ucf101 {shlex.quote(out)} " + _options(flags)


def world_captions(config: Mapping[str, Any]) -> str | None:
    """The captions file of a procedural world built in the DAG (video id -> caption from its
    parameters), which the manifest uses unless ``selection.caption_overrides`` is set."""
    paths, synthetic = data_paths(config), _section(config, "data").get("synthetic") or {}
    return f"{paths.synthetic_out}/{WORLD_CAPTIONS_FILE}" if synthetic.get("world") else None


def built_checkpoints(config: Mapping[str, Any]) -> str | None:
    """Which checkpoint family the DAG builds into ``checkpoints.dir``: ``tiny``, ``proxy``
    or None (the real checkpoints are read)."""
    checkpoints = _section(config, "checkpoints")
    if checkpoints.get("tiny") is not None:
        return "tiny"
    return "proxy" if checkpoints.get("proxy") is True else None


def split_list_files(config: Mapping[str, Any]) -> list[str]:
    """The split files the manifest reads: ``classInd.txt``, ``{subset}list0{split}.txt`` and
    the validation selection's list, if any."""
    paths = data_paths(config)
    selection = _section(config, "selection")
    subset, split = selection.get("subset", "test"), selection.get("split", 1)
    files = [f"{paths.splits_dir}/classInd.txt", f"{paths.splits_dir}/{subset}list0{split}.txt"]
    validation = selection.get("validation")
    if validation:
        val_split = validation.get("split") or split
        val_file = f"{paths.splits_dir}/{validation.get('subset', 'train')}list0{val_split}.txt"
        if val_file not in files:
            files.append(val_file)
    return files


@dataclass(frozen=True)
class CheckpointPaths:
    """Paths of a checkpoint folder in the official layout."""

    root: str

    @property
    def mmdit(self) -> str:
        """The diffusion transformer."""
        return f"{self.root}/{MMDIT_FILE}"

    @property
    def vae(self) -> str:
        """The video autoencoder."""
        return f"{self.root}/{VAE_FILE}"

    @property
    def t5(self) -> str:
        """The T5 text-encoder folder."""
        return f"{self.root}/{T5_DIR}"

    @property
    def clip(self) -> str:
        """The CLIP text-encoder folder."""
        return f"{self.root}/{CLIP_DIR}"


def checkpoint_paths(config: Mapping[str, Any]) -> CheckpointPaths:
    """Checkpoint locations of a validated configuration."""
    return CheckpointPaths(str(_section(config, "checkpoints").get("dir", "ckpts")).rstrip("/"))


def manifest_options(config: Mapping[str, Any]) -> str:
    """Optional ``sora-tta manifest`` flags of the ``selection`` section, shell-quoted."""
    selection = _section(config, "selection")
    return _options(
        {
            "--per-class": selection.get("per_class"),
            "--total": selection.get("total"),
            "--max-per-group": selection.get("max_per_group"),
            "--list": selection.get("list"),
            "--caption-overrides": selection.get("caption_overrides") or world_captions(config),
            "--decode-check": bool(selection.get("decode_check")),
            **validation_options(selection.get("validation")),
            "--exclude": json.dumps(selection["exclude"]) if selection.get("exclude") else None,
        }
    )


def validation_options(validation: Mapping[str, Any] | None) -> dict[str, Any]:
    """``sora-tta manifest`` flags of ``selection.validation`` (none when it is null)."""
    if not validation:
        return {}
    return {
        "--validation-subset": validation.get("subset", "train"),
        "--validation-split": validation.get("split"),
        "--validation-per-class": validation.get("per_class"),
        "--validation-total": validation.get("total"),
        "--validation-max-per-group": validation.get("max_per_group"),
    }


def final_method_ids(config: Mapping[str, Any], methods: Sequence[str]) -> list[str]:
    """Method ids of the final variants (``statistics.final_variants``; null = every variant)."""
    from sora_tta.variants import BASELINE, resolve_variant

    variants = [m for m in methods if m != BASELINE]
    final = _section(config, "statistics").get("final_variants")
    return variants if final is None else [resolve_variant(v, variants) for v in final]


@dataclass(frozen=True)
class Requirement:
    """Something on disk the configuration needs: one of ``alternatives``, each a set of paths."""

    what: str
    alternatives: tuple[tuple[str, ...], ...]

    @classmethod
    def path(cls, what: str, path: str) -> Requirement:
        """A single required path."""
        return cls(what, ((path,),))

    def satisfied(self) -> bool:
        """Whether every path of at least one alternative exists."""
        return any(all(os.path.exists(p) for p in alt) for alt in self.alternatives)

    def describe(self) -> str:
        """One line for the preflight report."""
        return f"{self.what}: " + " or ".join(" + ".join(alt) for alt in self.alternatives)


def _hf_requirements(
    folder: str, what: str, tokenizer: tuple[tuple[str, ...], ...]
) -> list[Requirement]:
    return [
        Requirement.path(f"{what} config", f"{folder}/config.json"),
        Requirement(f"{what} weights", tuple((f"{folder}/{name}",) for name in HF_WEIGHT_FILES)),
        Requirement(
            f"{what} tokenizer", tuple(tuple(f"{folder}/{f}" for f in alt) for alt in tokenizer)
        ),
    ]


def lpips_weights_path() -> str:
    """Where the LPIPS AlexNet trunk weights must be (torchvision's cache, no download)."""
    from sora_tta.evaluation.definitions import alexnet_weights_path

    return str(alexnet_weights_path())


def required_files(
    config: Mapping[str, Any],
    scope: str = "study",
    lpips_path: Callable[[], str] = lpips_weights_path,
) -> list[Requirement]:
    """Everything on disk that ``config`` needs and the workflow does not build itself.

    ``scope`` ``"study"``: data, checkpoints, tokenizers and metric weights;
    ``"checkpoints"``: only the checkpoints and tokenizers (all the smoke target needs).
    """
    reqs: list[Requirement] = []
    if scope == "study" and not _section(config, "data").get("synthetic"):
        paths = data_paths(config)
        reqs.append(Requirement.path("UCF-101 video folder", paths.ucf_root))
        reqs += [Requirement.path("UCF-101 split list", p) for p in split_list_files(config)]
    if scope == "study":
        selection = _section(config, "selection")
        for key in ("list", "caption_overrides"):
            if selection.get(key):
                reqs.append(Requirement.path(f"selection.{key} file", str(selection[key])))
    if built_checkpoints(config) is None:
        ckpt = checkpoint_paths(config)
        reqs.append(Requirement.path("Open-Sora v2.0 MMDiT checkpoint", ckpt.mmdit))
        reqs.append(Requirement.path("HunyuanVideo VAE checkpoint", ckpt.vae))
        reqs += _hf_requirements(ckpt.t5, "T5 text encoder", T5_TOKENIZER_FILES)
        reqs += _hf_requirements(ckpt.clip, "CLIP text encoder", CLIP_TOKENIZER_FILES)
    evaluation = _section(config, "evaluation")
    if scope == "study" and evaluation.get("lpips_backbone", "alexnet") == "alexnet":
        reqs.append(Requirement.path("LPIPS AlexNet weights (torchvision cache)", lpips_path()))
    if scope == "study" and evaluation.get("fvd_weights"):
        reqs.append(
            Requirement.path("FVD I3D weights (evaluation.fvd_weights)", evaluation["fvd_weights"])
        )
    return reqs


def missing_requirements(requirements: Iterable[Requirement]) -> list[Requirement]:
    """The requirements none of whose alternatives exist."""
    return [req for req in requirements if not req.satisfied()]


def preflight_message(missing: list[Requirement], source: str = "config") -> str:
    """One message listing everything that is missing."""
    lines = "\n".join(f"  - {req.describe()}" for req in missing)
    return (
        f"preflight: {len(missing)} required file(s) missing for {source}; nothing was "
        f"submitted:\n{lines}"
    )


#: Keys of ``sampling`` that the sampler takes (``sampling`` of ``sora-tta generate
#: --method-json``; the rest sizes clips).
SAMPLING_JSON_KEYS = (
    "num_steps",
    "guidance",
    "guidance_img",
    "text_osci",
    "image_osci",
    "num_cond_frames",
    "num_frames",
)


def sampling_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The sampler settings of a validated configuration."""
    sampling = _section(config, "sampling")
    return {key: sampling[key] for key in SAMPLING_JSON_KEYS}


def method_settings(
    config: Mapping[str, Any], method: str, adapt: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ``--method-json`` content of one method (``adapt`` None: the baseline): everything
    that decides its generations, so a changed setting rewrites the file and reruns them."""
    return {
        "method": method,
        "sampling": sampling_settings(config),
        "adapt": None if adapt is None else dict(adapt),
    }


def methods_rows(variants: Iterable[Any], final: Sequence[str] = ()) -> list[dict[str, str]]:
    """One row per method (baseline first) for the methods table of the report; its
    ``analysis`` is ``baseline``, ``final`` (method id in ``final``) or ``exploratory``."""
    from sora_tta.variants import BASELINE, canonical_json

    rows = [
        {
            "method": BASELINE,
            "name": BASELINE,
            "changed": "",
            "parameters": "no adaptation",
            "analysis": BASELINE,
        }
    ]
    for variant in variants:
        rows.append(
            {
                "method": variant.method_id,
                "name": variant.name,
                "changed": canonical_json(dict(variant.overrides)),
                "parameters": canonical_json(dict(variant.params)),
                "analysis": "final" if variant.method_id in final else "exploratory",
            }
        )
    return rows


def rows_to_tsv(rows: list[Mapping[str, str]]) -> str:
    """Tab-separated text with a header from the first row's keys (tabs in values replaced)."""
    if not rows:
        return ""
    header = list(rows[0])
    lines = ["\t".join(header)]
    lines += ["\t".join(str(row[key]).replace("\t", " ") for key in header) for row in rows]
    return "\n".join(lines) + "\n"


def check_smoke_clips(paths: Iterable[str], expected_shape: tuple[int, ...]) -> dict[str, Any]:
    """Re-read smoke clips and check shape ``(T, H, W, 3)`` and that they are not constant.

    Returns a JSON-ready report with ``ok``, ``problems`` and per-clip statistics.
    """
    import numpy as np

    from sora_tta.data.video import VideoReadError, read_frames

    clips, problems = {}, []
    for path in paths:
        try:
            frames = read_frames(path)
        except VideoReadError as err:
            problems.append(str(err))
            continue
        values = frames.astype(np.float64)
        clips[str(path)] = {
            "shape": list(frames.shape),
            "mean": float(values.mean()),
            "std": float(values.std()),
        }
        if tuple(frames.shape) != tuple(expected_shape):
            problems.append(f"{path}: shape {list(frames.shape)}, expected {list(expected_shape)}")
        if float(values.std()) == 0.0:
            problems.append(f"{path}: every pixel has the same value")
    return {
        "ok": not problems,
        "expected_shape": list(expected_shape),
        "clips": clips,
        "problems": problems,
    }


def _options(flags: Mapping[str, Any]) -> str:
    """``--flag value`` pairs, shell-quoted; ``True`` is a bare flag, ``None``/``False`` none."""
    parts = []
    for flag, value in flags.items():
        if value is True:
            parts.append(flag)
        elif value is not None and value is not False:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)


# The per-video rules pass their configuration-derived flags as one precomputed string:
# fewer placeholders per job keeps building and printing a 50,000-job DAG fast.


def preprocess_options(config: Mapping[str, Any]) -> str:
    """Flags of ``sora-tta preprocess`` besides input and output."""
    selection, sampling = _section(config, "selection"), _section(config, "sampling")
    return _options(
        {
            "--start-frame": selection.get("start_frame", 0),
            "--num-frames": sampling.get("num_frames"),
            "--height": sampling.get("height"),
            "--width": sampling.get("width"),
            "--expected-size": selection.get("expected_size"),
        }
    )


def generate_options(config: Mapping[str, Any], tta: bool = False) -> str:
    """Flags of ``sora-tta generate`` shared by every video (of TTA methods when ``tta``)."""
    generation = _section(config, "generation")
    return _options(
        {
            "--checkpoint-dir": checkpoint_paths(config).root,
            "--seed": generation.get("seed", 0),
            "--device": generation.get("device", "auto"),
            "--dtype": generation.get("dtype", "auto"),
            "--save-adapter": tta and bool(generation.get("save_adapter")),
            "--no-progress": True,
            "--compile": compile_mode(generation.get("compile", "auto")),
            "--compile-cache-dir": generation.get("compile_cache_dir"),
            "--stage-dir": generation.get("stage_dir"),
        }
    )


def evaluate_options(config: Mapping[str, Any]) -> str:
    """Flags of ``sora-tta evaluate`` shared by every method and class."""
    sampling, evaluation = _section(config, "sampling"), _section(config, "evaluation")
    return _options(
        {
            "--context-frames": sampling.get("num_cond_frames"),
            "--num-frames": sampling.get("num_frames"),
            "--lpips-backbone": evaluation.get("lpips_backbone", "alexnet"),
            "--lpips-seed": evaluation.get("lpips_seed", 0),
            "--device": evaluation.get("device", "auto"),
        }
    )


def fvd_options(config: Mapping[str, Any]) -> str:
    """Flags of ``sora-tta fvd`` from ``evaluation`` and ``aggregate`` (no ``--weights``
    without ``evaluation.fvd_weights``: the command then writes why FVD was skipped)."""
    sampling, evaluation = _section(config, "sampling"), _section(config, "evaluation")
    return _options(
        {
            "--weights": evaluation.get("fvd_weights"),
            "--context-frames": sampling.get("num_cond_frames"),
            "--num-frames": sampling.get("num_frames"),
            "--seed": _section(config, "aggregate").get("seed"),
            "--device": evaluation.get("device", "auto"),
        }
    )


def aggregate_options(config: Mapping[str, Any], methods: Sequence[str]) -> str:
    """Flags of ``sora-tta aggregate`` for the ``statistics`` section: the declared primary
    endpoint and family, variant names resolved to method ids (``ValueError`` naming the
    problem when a name matches no variant or the declaration contradicts itself)."""
    from sora_tta.variants import resolve_variant

    stats = _section(config, "statistics")
    primary, family = stats.get("primary", {}), stats.get("family", {})
    metrics = list(family.get("metrics", []))
    segments = list(family.get("segments", []))
    variants = [m for m in methods if m != "baseline"]
    final = stats.get("final_variants")
    final_ids = None if final is None else [resolve_variant(v, variants) for v in final]
    primary_id = primary.get("variant")
    if primary_id is not None:
        primary_id = resolve_variant(primary_id, variants)
        if final_ids is not None and primary_id not in final_ids:
            raise ValueError(f"primary variant {primary['variant']!r} is not a final variant")
    if metrics and primary.get("metric") not in metrics:
        raise ValueError(f"primary metric {primary.get('metric')!r} is not in family.metrics")
    if segments and primary.get("segment") not in segments:
        raise ValueError(f"primary segment {primary.get('segment')!r} is not in family.segments")
    return _options(
        {
            "--alpha": stats.get("alpha"),
            "--primary-metric": primary.get("metric"),
            "--primary-segment": primary.get("segment"),
            "--primary-variant": primary_id,
            "--family-metrics": ",".join(metrics) or None,
            "--family-segments": ",".join(segments) or None,
            "--final-variants": None if final_ids is None else ",".join(final_ids),
            "--min-group-n": stats.get("min_group_n"),
        }
    )


_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1rem;font-size:14px}"
    "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.25rem .5rem}"
    "th{background:#f0f0f0;position:sticky;top:0}td{font-variant-numeric:tabular-nums}"
)


def html_page(title: str, body: str) -> str:
    """A small self-contained HTML document (inline style, no external resources)."""
    import html

    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_PAGE_STYLE}</style></head>"
        f"<body><h3>{html.escape(title)}</h3>\n{body}\n</body></html>\n"
    )


#: How a random-backbone LPIPS is labelled wherever it is shown (tables and figures).
RANDOM_LPIPS_LABEL = "lpips (RANDOM backbone: pipeline test, not comparable)"


#: Said above a table page without rows (e.g. the failures of a run where nothing failed).
EMPTY_TABLE_NOTE = "No rows in this run."


def table_page(
    path: str | os.PathLike[str],
    title: str,
    float_format: str = "{:.4g}",
    random_lpips: bool = False,
) -> str:
    """A CSV or TSV table rendered as a self-contained HTML page for the report.

    LPIPS rows computed with the random backbone (their ``lpips_backbone`` says so, or
    ``random_lpips`` for tables without that column) are relabelled, with a warning above."""
    import pandas as pd

    sep = "\t" if str(path).endswith(".tsv") else ","
    table = pd.read_csv(path, sep=sep, keep_default_na=False, na_values=[""])
    warning = ""
    if "metric" in table.columns:
        is_lpips = table["metric"].astype(str) == "lpips"
        if "lpips_backbone" in table.columns:
            is_lpips &= table["lpips_backbone"].astype(str).str.contains("random")
        elif not random_lpips:
            is_lpips &= False
        if is_lpips.any():
            table.loc[is_lpips, "metric"] = RANDOM_LPIPS_LABEL
            warning = (
                "<p><strong>Warning:</strong> LPIPS in this table was computed with a seeded "
                "RANDOM AlexNet trunk (lpips_backbone: random); it tests the pipeline and is not "
                "comparable with published LPIPS.</p>"
            )
    body = table.to_html(
        index=False, na_rep="", border=0, float_format=float_format.format, escape=True
    )
    if table.empty:
        body = f"<p>{EMPTY_TABLE_NOTE}</p>" + body
    return html_page(title, warning + body)


def image_page(path: str | os.PathLike[str], title: str) -> str:
    """An image (e.g. an animated GIF the report cannot show inline) embedded in a page."""
    import base64
    import mimetypes

    mime = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return html_page(title, f"<img alt='{Path(path).name}' src='data:{mime};base64,{data}'>")


class SmokeCheckError(RuntimeError):
    """The smoke clips do not have the expected frames (see the check report)."""


def run_smoke_check(
    clips: Iterable[str], expected_shape: tuple[int, ...], report_path: str, log_path: str
) -> dict[str, Any]:
    """Check the smoke clips, write the JSON report (and the log); raise if a check failed."""
    import json

    from sora_tta.io import write_json_atomic, write_text_atomic

    report = check_smoke_clips(clips, expected_shape)
    write_text_atomic(log_path, json.dumps(report, indent=2) + "\n")
    if not report["ok"]:
        raise SmokeCheckError(f"smoke check failed: {'; '.join(report['problems'])}")
    write_json_atomic(report_path, report)
    return report


def write_report_pages(
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    titles: Mapping[str, str],
    random_lpips: bool = False,
) -> None:
    """Render each table input named in ``titles`` and the ``strip`` image as report pages
    (``random_lpips``: the run's LPIPS backbone is the random one, see :func:`table_page`)."""
    from sora_tta.io import write_text_atomic

    for name, title in titles.items():
        page = table_page(inputs[name], title, random_lpips=random_lpips)
        write_text_atomic(outputs[name], page)
    write_text_atomic(outputs["strip"], image_page(inputs["strip"], "Example continuations"))


def preflight_report(requirements: Iterable[Requirement], source: str) -> str:
    """What the preflight found, one line per requirement, and a closing summary line."""
    requirements = list(requirements)
    lines = [f"found {req.describe()}" for req in requirements]
    lines.append(f"preflight: all {len(requirements)} required inputs present ({source})")
    return "\n".join(lines) + "\n"


def is_dry_run(argv: Iterable[str]) -> bool:
    """Whether a snakemake command line asks for a dry run (``-n``, also combined as in
    ``-np``, ``--dry-run``, ``--dryrun``, ``--just-print``). Snakemake decides its executor
    only after the Snakefile is read, so the preflight has to read the command line."""
    for arg in argv:
        if arg == "--":
            break
        if arg in ("--dry-run", "--dryrun", "--just-print"):
            return True
        if re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", arg):
            return True
    return False


def forced_rules(argv: Iterable[str]) -> set[str]:
    """The targets named after ``-R`` / ``--forcerun`` on a snakemake command line."""
    forced: set[str] = set()
    taking = False
    for arg in argv:
        if arg in ("-R", "--forcerun"):
            taking = True
        elif arg.startswith("-"):
            taking = False
        elif taking:
            forced.add(arg)
    return forced


#: ``snakemake --lint`` advice this workflow does not take: the rules run in the environment
#: that runs Snakemake (no per-rule conda environments, see workflow/rules/common.smk).
ACCEPTED_LINTS = ("Specify a conda environment or container for each rule.",)


def unexpected_lints(text: str, accepted: Iterable[str] = ACCEPTED_LINTS) -> list[str]:
    """The lints of ``snakemake --lint`` output other than ``accepted``, as "where: lint"."""
    found, where = [], ""
    for line in text.splitlines():
        if line.startswith("Lints for "):
            where = line.removeprefix("Lints for ").rstrip(":")
        elif line.startswith("    * ") and where:
            title = line.removeprefix("    * ").rstrip(":")
            if title not in accepted:
                found.append(f"{where}: {title}")
    return found


def parse_job_counts(text: str) -> dict[str, int]:
    """The last 'Job stats' table of Snakemake output as {rule: count} ({} if none)."""
    counts: dict[str, int] = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith("Job stats:"):
            in_table, counts = True, {}
            continue
        if in_table:
            match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
            if match:
                counts[match.group(1)] = int(match.group(2))
            elif counts and not line.strip():
                in_table = False
    return counts
