"""Adaptation variants: named and grid-declared parameter sets -> method ids.

The workflow's ``variants`` section declares test-time-adaptation variants as overrides of
the ``adapt`` defaults, either by name or as grids (the cartesian product of a few axes)::

    variants:
      named:
        r8-s20: {rank: 8, steps: 20}
      grids:
        sweep:
          axes: {rank: [8, 16], lr: [1.0e-4, 2.0e-4], mode: [denoise, continue]}
          fixed: {steps: 50}

Every variant becomes a :class:`Variant` with its full, normalised parameter set and a
method id ``{name}-{digest}``: the digest is a short hash of the parameters that determine
the result, so the output folder of a variant is tied to its parameters and editing a
variant can never mix old and new results. Grid members get readable names from their
axis values (``sweep-r8-lr1e-4-denoise``).

Pure Python (no torch): the workflow imports this module while it builds the DAG.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sora_tta import hashing
from sora_tta.study.values import kind_of, normalise_value

BASELINE = "baseline"
#: Parameters that change how a run is executed but not its result (resume interval,
#: activation recomputation): they are not part of the method id.
NON_RESULT_KEYS = frozenset({"checkpoint_every", "gradient_checkpointing"})
DIGEST_LENGTH = 8
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
#: Short labels of grid axes in generated names; string axes show only their value.
ABBREVIATIONS = {
    "rank": "r",
    "alpha": "a",
    "dropout": "do",
    "lr": "lr",
    "betas": "b",
    "weight_decay": "wd",
    "steps": "s",
    "warmup_steps": "w",
    "grad_clip": "gc",
    "continue_frames": "cf",
    "mixed_weights": "mw",
    "draws_per_step": "d",
    "text_dropout": "td",
    "cond_dropout": "cd",
    "checkpoint_every": "ck",
    "gradient_checkpointing": "gck",
}
VALUE_ONLY_KEYS = frozenset({"mode", "targets", "lr_schedule", "adapt_on"})

ParamCheck = Callable[[Mapping[str, Any]], list[str]]


class VariantError(ValueError):
    """A variant declaration is invalid; the message names the variant and the key."""


@dataclass(frozen=True)
class Variant:
    """One adaptation variant.

    Attributes:
        name: readable name (``named`` key, or generated for grid members).
        params: the full parameter set (defaults merged, values normalised).
        overrides: what the declaration changed relative to the defaults.
        digest: short hash of the result-determining parameters.
    """

    name: str
    params: Mapping[str, Any]
    overrides: Mapping[str, Any]
    digest: str

    @property
    def method_id(self) -> str:
        """Output-folder name of the variant: ``{name}-{digest}``."""
        return f"{self.name}-{self.digest}"


def normalise_params(
    overrides: Mapping[str, Any],
    defaults: Mapping[str, Any],
    where: str = "variant",
    kinds: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Merge ``overrides`` into ``defaults``, every value in canonical form.

    ``kinds`` gives each parameter's JSON type (see :mod:`sora_tta.study.values`); without
    it the type of the default value is used.

    Raises:
        VariantError: an unknown key (the message lists the valid ones) or a wrong type.
    """
    if not isinstance(overrides, Mapping):
        raise VariantError(
            f"{where}: expected a mapping of adaptation parameters, got {overrides!r}"
        )
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise VariantError(
            f"{where}: unknown adaptation parameter(s) {unknown}; valid: {sorted(defaults)}"
        )
    try:
        if kinds is None:
            kinds = {key: kind_of(value) for key, value in defaults.items()}
        merged = {k: normalise_value(k, defaults[k], kinds[k], "adapt") for k in defaults}
        for key, value in overrides.items():
            merged[key] = normalise_value(key, value, kinds[key], where)
    except ValueError as err:
        raise VariantError(str(err)) from err
    return merged


def params_digest(params: Mapping[str, Any], length: int = DIGEST_LENGTH) -> str:
    """Hex digest of the result-determining parameters (``NON_RESULT_KEYS`` left out)."""
    relevant = {k: v for k, v in params.items() if k not in NON_RESULT_KEYS}
    return hashing.digest(relevant, length)


def format_value(value: Any) -> str:
    """Short, path-safe text of a parameter value for generated names (2e-4, 0.5, attn+mlp)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-2:
            mantissa, exponent = f"{value:.6e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exponent)}"
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "_".join(format_value(v) for v in value)
    if isinstance(value, Mapping):
        return "_".join(f"{k}{format_value(value[k])}" for k in sorted(value))
    return re.sub(r"[^A-Za-z0-9.+]+", "_", str(value)).strip("_") or "x"


def grid_member_name(prefix: str, combination: Mapping[str, Any]) -> str:
    """Readable name of one grid point: ``prefix`` and each axis value in axis order."""
    parts = [prefix]
    for key, value in combination.items():
        text = format_value(value)
        parts.append(text if key in VALUE_ONLY_KEYS else f"{ABBREVIATIONS.get(key, key)}{text}")
    return "-".join(parts)


def expand_grid(
    prefix: str, axes: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """All combinations of ``axes`` (in order) as ``(name, overrides)`` pairs.

    ``fixed`` overrides apply to every member; an axis may not also be fixed.
    """
    where = f"variants.grids.{prefix}"
    fixed = dict(fixed or {})
    if not isinstance(axes, Mapping) or not axes:
        raise VariantError(f"{where}: axes must be a non-empty mapping of parameter -> values")
    for key, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise VariantError(f"{where}.axes.{key}: expected a non-empty list of values")
    both = sorted(set(axes) & set(fixed))
    if both:
        raise VariantError(f"{where}: {both} given both as axes and as fixed values")
    keys = list(axes)
    members = []
    for values in itertools.product(*(axes[k] for k in keys)):
        combination = dict(zip(keys, values, strict=True))
        members.append((grid_member_name(prefix, combination), {**fixed, **combination}))
    return members


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise VariantError(
            f"{where}: invalid variant name {name!r} (letters, digits, '_', '.', '+', '-'; "
            "starting with a letter or digit)"
        )
    if name == BASELINE:
        raise VariantError(f"{where}: the name {BASELINE!r} is reserved for the baseline")
    return name


def declared_variants(spec: Mapping[str, Any] | None) -> list[tuple[str, str, dict[str, Any]]]:
    """The declarations of a ``variants`` section as ``(where, name, overrides)`` triples."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - {"named", "grids"})
    if unknown:
        raise VariantError(f"variants: unknown key(s) {unknown}; expected 'named' and/or 'grids'")
    declared: list[tuple[str, str, dict[str, Any]]] = []
    named = spec.get("named") or {}
    if not isinstance(named, Mapping):
        raise VariantError("variants.named: expected a mapping of name -> parameter overrides")
    for name, overrides in named.items():
        where = f"variants.named.{name}"
        declared.append((where, _check_name(name, where), dict(overrides or {})))
    grids = spec.get("grids") or {}
    if not isinstance(grids, Mapping):
        raise VariantError("variants.grids: expected a mapping of prefix -> {axes, fixed}")
    for prefix, grid in grids.items():
        where = f"variants.grids.{prefix}"
        _check_name(prefix, where)
        if not isinstance(grid, Mapping) or set(grid) - {"axes", "fixed"}:
            raise VariantError(f"{where}: expected a mapping with 'axes' and optional 'fixed'")
        for name, overrides in expand_grid(prefix, grid.get("axes"), grid.get("fixed")):
            declared.append((f"{where} ({name})", _check_name(name, where), overrides))
    return declared


def expand_variants(
    spec: Mapping[str, Any] | None,
    defaults: Mapping[str, Any],
    kinds: Mapping[str, str] | None = None,
    check: ParamCheck | None = None,
) -> list[Variant]:
    """Expand a ``variants`` section into :class:`Variant` objects (named first, then grids).

    Args:
        spec: ``{"named": {name: overrides}, "grids": {prefix: {"axes": ..., "fixed": ...}}}``.
        defaults: the full default parameter set (the workflow's ``adapt`` section).
        kinds: JSON type of each parameter (``values.kinds_from_schema``); default: the
            defaults' types.
        check: optional validator of a full parameter set returning problem descriptions
            (e.g. ranges from the JSON schema); problems become :class:`VariantError`.

    Raises:
        VariantError: invalid names, unknown keys, wrong types, failed checks, two variants
            with the same name, or two variants with the same result-determining parameters.
    """
    variants: list[Variant] = []
    by_name: dict[str, str] = {}
    by_digest: dict[str, str] = {}
    for where, name, overrides in declared_variants(spec):
        params = normalise_params(overrides, defaults, where, kinds)
        if check is not None:
            problems = check(params)
            if problems:
                raise VariantError(f"{where}: " + "; ".join(problems))
        if name in by_name:
            raise VariantError(
                f"{where}: variant name {name!r} already declared by {by_name[name]}"
            )
        digest = params_digest(params)
        if digest in by_digest:
            raise VariantError(
                f"{where}: same adaptation parameters as {by_digest[digest]} (would run twice)"
            )
        by_name[name] = where
        by_digest[digest] = where
        changed = {k: params[k] for k in overrides}
        variants.append(Variant(name, params, changed, digest))
    return variants


def cross_video_donors(videos: Sequence[tuple[str, str]], seed: int) -> dict[str, str]:
    """The cross-video control's donor of every video: a derangement fixed by ``seed`` in
    which each video's donor belongs to a different class.

    ``videos`` are ``(video_id, class_name)`` pairs. The videos are grouped by class (class
    order and order within a class shuffled by ``seed``) and each takes the video ``m``
    places further on, cyclically, where ``m`` is the size of the largest class: a donor
    ``m`` places away can only share its class if a class had more than ``m`` videos. Needs
    ``m <= n / 2`` (else no such derangement exists).
    """
    ids = [video for video, _ in videos]
    if len(set(ids)) != len(ids):
        raise ValueError("cross-video donors: duplicate video ids")
    by_class: dict[str, list[str]] = {}
    for video, class_name in sorted(videos):
        by_class.setdefault(class_name, []).append(video)
    largest = max((len(v) for v in by_class.values()), default=0)
    if not videos:
        return {}
    if 2 * largest > len(videos):
        raise ValueError(
            f"cross-video donors: {largest} of {len(videos)} videos share a class; a donor of "
            "another class for every video needs every class to hold at most half of them"
        )
    rng = random.Random(f"cross-video:{seed}")
    classes = sorted(by_class)
    rng.shuffle(classes)
    order = []
    for class_name in classes:
        members = list(by_class[class_name])
        rng.shuffle(members)
        order += members
    return {video: order[(i + largest) % len(order)] for i, video in enumerate(order)}


def cross_video_donors_by_role(videos: Sequence[tuple[str, str, str]], seed: int) -> dict[str, str]:
    """:func:`cross_video_donors` within each selection: ``videos`` are ``(video_id,
    class_name, role)``; a validation video's donor is a validation video and a test video's
    a test video, so exploration on validation never adapts on a test clip."""
    roles: dict[str, list[tuple[str, str]]] = {}
    for video, class_name, role in videos:
        roles.setdefault(role, []).append((video, class_name))
    donors: dict[str, str] = {}
    for role, members in sorted(roles.items()):
        try:
            donors.update(cross_video_donors(members, seed))
        except ValueError as err:
            raise ValueError(f"{role} videos: {err}") from err
    return donors


def method_ids(variants: Iterable[Variant]) -> list[str]:
    """``baseline`` followed by the method id of every variant."""
    return [BASELINE, *(v.method_id for v in variants)]


def resolve_variant(name: str, methods: Iterable[str]) -> str:
    """The method id of variant ``name``: an exact method id, or the one id ``<name>-<hash>``.

    Raises ``VariantError`` naming the known methods when there is none or more than one.
    """
    methods = list(methods)
    if name in methods:
        return name
    found = [m for m in methods if m.rsplit("-", 1)[0] == name]
    if len(found) != 1:
        raise VariantError(
            f"variant {name!r} matches {len(found)} of the methods {', '.join(methods)}"
        )
    return found[0]


def method_wildcard_pattern(variants: Iterable[Variant]) -> str:
    """Regular expression matching exactly the variants' method ids (for wildcard constraints)."""
    ids = [re.escape(v.method_id) for v in variants]
    return "|".join(ids) if ids else "(?!)"
