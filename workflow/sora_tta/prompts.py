"""Prompt text as Open-Sora v2.0 builds it, and the stable id of a prompt (no torch needed).

Kept apart from the text encoders so the workflow can tell which prompt-embedding file a
video needs without importing torch.
"""

from __future__ import annotations

import hashlib

NEGATIVE_PROMPT = ""
#: File name of the negative prompt's embedding.
NEGATIVE_FILE = "negative.safetensors"
DEFAULT_FPS = 24
DEFAULT_MOTION_SCORE = 4


def format_prompt(
    caption: str, fps: int = DEFAULT_FPS, motion_score: int = DEFAULT_MOTION_SCORE
) -> str:
    """Prompt text as the reference builds it from a caption.

    The caption (trailing whitespace removed) gets a final period if it has none, then
    ``" {fps} FPS."`` and ``" {motion_score} motion score."``. The negative prompt is
    :data:`NEGATIVE_PROMPT`, used without these suffixes.
    """
    text = caption.rstrip()
    if not text:
        raise ValueError("format_prompt: empty caption")
    if not text.endswith("."):
        text += "."
    return f"{text} {fps} FPS. {motion_score} motion score."


def prompt_id(prompt: str) -> str:
    """Stable file name stem of a prompt: the first 16 hex digits of its SHA-1."""
    return hashlib.sha1(prompt.encode()).hexdigest()[:16]


def prompt_file(prompt: str) -> str:
    """File name of a prompt's embedding in the prompt folder: :data:`NEGATIVE_FILE` for the
    negative prompt, else ``{prompt_id}.safetensors``."""
    return NEGATIVE_FILE if prompt == NEGATIVE_PROMPT else f"{prompt_id(prompt)}.safetensors"
