"""Regional compilation of the MMDiT blocks for sampling: same result as eager, fallback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from sora_tta.models import compile as comp
from sora_tta.models import pipeline
from sora_tta.models.text import NEGATIVE_PROMPT, format_prompt
from sora_tta.sampling import GuidanceConfig
from sora_tta.tta import lora


@pytest.fixture(scope="module")
def sampling_case(tiny_ckpt_dir: Path, clip_maker):
    bundle = pipeline.load_models(tiny_ckpt_dir, device="cpu", dtype=torch.float32)
    encoders = pipeline.load_text_encoders_from(tiny_ckpt_dir)
    txt, y_vec = encoders.encode([format_prompt("playing guitar"), NEGATIVE_PROMPT])
    condition = pipeline.encode_condition(
        bundle, clip_maker.pattern(frames=33), num_cond_frames=17, num_frames=33
    )

    def sample() -> torch.Tensor:
        return pipeline.sample_continuation(
            bundle, condition, txt[:1], y_vec[:1], txt[1:], y_vec[1:],
            GuidanceConfig(num_steps=3), seed=0,
        )  # fmt: skip

    return bundle, sample


def test_modes() -> None:
    assert comp.compile_enabled("auto", "cuda") and not comp.compile_enabled("auto", "cpu")
    assert comp.compile_enabled("on", "cpu") and not comp.compile_enabled("off", "cuda")
    assert comp.compile_mode(True) == "on" and comp.compile_mode(False) == "off"
    with pytest.raises(ValueError, match="compile must be one of"):
        comp.compile_mode("sometimes")


def test_auto_on_cpu_runs_eager(sampling_case) -> None:
    bundle, sample = sampling_case
    _, record = comp.run_compiled(bundle.mmdit, "auto", sample)
    assert record == {"mode": "auto", "compiled": False, "fallback": None}


def _compiled_vs_eager(bundle, sample, backend: str) -> tuple[float, dict]:
    spec = lora.LoraSpec(rank=4, alpha=8.0, targets="attn+fused")
    with lora.lora_adapters(bundle.mmdit, spec, torch.Generator().manual_seed(0)):
        for name, param in bundle.mmdit.named_parameters():
            if "lora_B" in name:  # peft starts B at zero: make the adapters matter
                torch.nn.init.normal_(param, std=0.02, generator=torch.Generator().manual_seed(1))
        eager = sample()
        compiled, record = comp.run_compiled(bundle.mmdit, "on", sample, backend=backend)
    assert all(b._compiled_call_impl is None for b in comp.transformer_blocks(bundle.mmdit))
    return float((compiled - eager).norm() / eager.norm()), record


def test_regional_compilation_with_adapters_equals_eager(sampling_case) -> None:
    """Dynamo capture of every block with peft adapters in place (aot_eager: no C++ build)."""
    error, record = _compiled_vs_eager(*sampling_case, backend="aot_eager")
    assert record["compiled"] and record["fallback"] is None, record
    assert error < 1e-6, error


@pytest.mark.slow
def test_inductor_sampling_with_adapters_equals_eager(
    sampling_case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inductor on this machine's CPU (C++ kernels; about 7 minutes on a busy 2-core machine)."""
    monkeypatch.setenv(comp.CACHE_ENV, os.environ.get(comp.CACHE_ENV, ""))
    cache = comp.set_cache_dir(tmp_path / "inductor")
    error, record = _compiled_vs_eager(*sampling_case, backend="inductor")
    assert record["compiled"] and record["fallback"] is None, record
    assert error < 1e-4, error
    assert any(cache.rglob("*")), "nothing written to the Inductor cache"


def test_compile_error_falls_back_to_eager(sampling_case) -> None:
    bundle, sample = sampling_case

    def broken_backend(graph, example_inputs):  # type: ignore[no-untyped-def]
        raise RuntimeError("no compiler here")

    eager = sample()
    result, record = comp.run_compiled(bundle.mmdit, "on", sample, backend=broken_backend)
    assert not record["compiled"] and "no compiler here" in record["fallback"]
    assert torch.equal(result, eager)
    assert all(b._compiled_call_impl is None for b in comp.transformer_blocks(bundle.mmdit))


def test_model_errors_are_not_swallowed(sampling_case) -> None:
    bundle, _ = sampling_case

    def failing() -> None:
        raise ValueError("a bug in the model code")

    with pytest.raises(ValueError, match="a bug"):
        comp.run_compiled(bundle.mmdit, "on", failing)
