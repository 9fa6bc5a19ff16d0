"""How far adaptation moved each guidance branch at the sampler's first step.

The sampler combines three evaluations of the model, (prompt, condition), (negative,
condition) and (negative, zero condition), into ``v = v3 + g_img (v2 - v3) + g_txt (v1 - v2)``.
The adapter acts in all three, so a study that trains only one of them needs to know how
much the others moved. :func:`branch_movement` evaluates the base model (adapters bypassed)
and the adapted model on the first step's exact inputs (same noise, ``t = 1``) and reports,
per branch and for the guided update, ``mean |v_adapted - v_base|`` and the same divided by
``mean |v_base|``. It costs two extra model calls of batch 3.
"""

from __future__ import annotations

from typing import Any

import torch

from sora_tta.models import pipeline
from sora_tta.sampling import GuidanceConfig
from sora_tta.tta import lora
from sora_tta.tta.objective import BRANCHES

GUIDED = "guided"
DEFINITION = (
    "first sampling step (t = 1, the run's noise): mean |v_adapted - v_base| per guidance "
    "branch and for the guided update; relative = that / mean |v_base|"
)


def guided_velocity(v: torch.Tensor, guidance: GuidanceConfig) -> torch.Tensor:
    """The first step's guided velocity from the three branches ``(3, ...)`` (no oscillation
    at step 0)."""
    v1, v2, v3 = v[0], v[1], v[2]
    return v3 + guidance.guidance_img * (v2 - v3) + guidance.guidance * (v1 - v2)


def movement_summary(
    base: torch.Tensor, adapted: torch.Tensor, guidance: GuidanceConfig
) -> dict[str, Any]:
    """``{"definition", "abs": {branch: x}, "relative": {branch: x}}`` of two ``(3, L, D)``
    first-step velocities."""
    pairs = {name: (base[i], adapted[i]) for i, name in enumerate(BRANCHES)}
    pairs[GUIDED] = (guided_velocity(base, guidance), guided_velocity(adapted, guidance))
    absolute, relative = {}, {}
    for name, (before, after) in pairs.items():
        moved = float((after - before).abs().mean())
        absolute[name] = moved
        relative[name] = moved / max(float(before.abs().mean()), 1e-12)
    return {"definition": DEFINITION, "abs": absolute, "relative": relative}


def branch_movement(
    bundle: pipeline.ModelBundle,
    condition: pipeline.V2VCondition,
    prompt: tuple[torch.Tensor, torch.Tensor],
    negative: tuple[torch.Tensor, torch.Tensor],
    guidance: GuidanceConfig,
    seed: int,
) -> dict[str, Any]:
    """Movement of every guidance branch of the adapted ``bundle.mmdit`` (adapters in place)."""
    args = (bundle, condition, prompt[0], prompt[1], negative[0], negative[1], guidance, seed)
    with lora.adapters_disabled(bundle.mmdit):
        base = pipeline.first_step_velocities(*args)
    adapted = pipeline.first_step_velocities(*args)
    return movement_summary(base, adapted, guidance)
