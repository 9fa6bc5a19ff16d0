"""FVD: the Fréchet distance, the detector contract, and ``sora-tta fvd`` end to end.

The real I3D weights cannot be downloaded here, so the detector is the small TorchScript
module of ``tests/conftest.py`` (``i3d_standin``) with the real one's call signature
``forward(x, rescale, resize, return_features)``, saved with ``torch.jit.save``: the same
file format, loaded by the same code path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sora_tta.cli import CommandError
from sora_tta.evaluation import fvd
from sora_tta.evaluation.stats import BootstrapConfig

FEATURES = 8  # of the stand-in (tests/conftest.py)
# torch.jit.script / save are deprecated in favour of torch.export; the weights are TorchScript.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")


class _OnlyX(torch.nn.Module):
    """A TorchScript module that does not take the detector's keyword arguments."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


@pytest.fixture(scope="module")
def weights(i3d_standin) -> Path:
    return i3d_standin(Path(i3d_standin.folder) / "i3d_torchscript.pt")


# ---------------------------------------------------------------- the distance
def test_frechet_distance_matches_the_closed_form() -> None:
    """Commuting covariances: |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2."""
    rng = np.random.default_rng(1)
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    a, b = np.array([1.0, 2.0, 3.0, 4.0, 0.5]), np.array([4.0, 1.0, 0.25, 9.0, 0.5])
    s1, s2 = rotation @ np.diag(a) @ rotation.T, rotation @ np.diag(b) @ rotation.T
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert fvd.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # One dimension: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s.
    one = fvd.frechet_distance(
        np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])
    )
    assert one == pytest.approx(4.0 + 1.0)


def test_frechet_distance_non_commuting_is_symmetric_and_positive() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = x @ x.T + np.eye(6), y @ y.T + np.eye(6)
    mu = np.zeros(6)
    d12, d21 = fvd.frechet_distance(mu, s1, mu, s2), fvd.frechet_distance(mu, s2, mu, s1)
    assert d12 == pytest.approx(d21, rel=1e-8) and d12 > 0
    assert fvd.frechet_distance(mu, s1, mu, s1) == pytest.approx(0.0, abs=1e-8)


def test_fvd_of_a_set_with_itself_is_zero_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(40, FEATURES))
    assert abs(fvd.fvd(features, features)) < 1e-8
    shifts = [fvd.fvd(features + s, features) for s in (0.5, 1.0, 2.0)]
    assert shifts == pytest.approx([FEATURES * s**2 for s in (0.5, 1.0, 2.0)], rel=1e-6)
    # Fewer videos than dimensions: singular covariances, still finite and ~0 against itself.
    few = rng.normal(size=(5, 20))
    assert abs(fvd.fvd(few, few)) < 1e-5 and fvd.fvd(few + 1.0, few) > 19.0


@pytest.mark.parametrize(("n_gen", "n_ref", "dim"), [(30, 25, 60), (60, 50, 20), (12, 12, 12)])
def test_fvd_from_features_equals_the_sqrtm_formula(n_gen, n_ref, dim) -> None:
    """The SVD / eigenvalue route of trace_sqrt_product gives what scipy's sqrtm gives, with
    fewer videos than dimensions (singular covariances) and with more."""
    rng = np.random.default_rng(n_gen + dim)
    mixing = rng.normal(size=(dim, dim))
    reference = rng.normal(size=(n_ref, dim)) @ mixing
    generated = rng.normal(size=(n_gen, dim)) @ mixing * 1.3 + 0.5
    expected = fvd.frechet_distance(*fvd.gaussian_stats(generated), *fvd.gaussian_stats(reference))
    assert fvd.fvd(generated, reference) == pytest.approx(expected, rel=1e-6)


def test_fvd_needs_two_videos() -> None:
    with pytest.raises(fvd.FvdError, match="at least 2 videos"):
        fvd.fvd(np.zeros((1, 3)), np.zeros((1, 3)))


def test_bootstrap_difference_is_paired_and_seeded() -> None:
    rng = np.random.default_rng(4)
    reference = rng.normal(size=(30, 4))
    close = reference + rng.normal(scale=0.1, size=reference.shape)
    far = reference + 1.5
    boot = BootstrapConfig(n_resamples=200, seed=7)
    same = fvd.compare_fvd(close, reference, close, boot)
    assert same.diff_ci == (0.0, 0.0) and same.fvd == same.baseline_fvd
    better = fvd.compare_fvd(close, reference, far, boot)
    assert better.diff_ci[1] < 0 < better.baseline_fvd - better.fvd
    assert better.fvd_ci[0] <= better.fvd <= better.fvd_ci[1]
    assert fvd.compare_fvd(close, reference, far, boot) == better  # same seed, same CIs


def test_resampled_fvd_is_inflated_and_the_ci_is_recentred() -> None:
    """Duplicated videos inflate FVD (its small-sample bias): the plain percentile interval
    lies above the estimate; the recentred one holds it, with the same width."""
    rng = np.random.default_rng(10)
    reference = rng.normal(size=(40, 30))
    generated = reference + rng.normal(scale=0.5, size=reference.shape)
    boot = BootstrapConfig(n_resamples=300, seed=0)
    result = fvd.compare_fvd(generated, reference, None, boot)
    assert result.fvd_shift > 0
    assert result.fvd_ci[0] <= result.fvd <= result.fvd_ci[1]
    (low, high), shift = fvd.recentred_ci(1.0, [3.0, 4.0, 5.0], 0.5)
    assert shift == 3.0 and (low, high) == (0.5, 1.5)
    assert np.isnan(fvd.recentred_ci(1.0, [], 0.95)[1])


# ---------------------------------------------------------------- the detector
def test_preprocess_crops_a_224x288_clip_and_resizes_others() -> None:
    frames = np.random.default_rng(5).integers(0, 256, size=(4, 224, 288, 3), dtype=np.uint8)
    x = fvd.preprocess(frames)
    assert x.shape == (3, 4, 224, 224)
    expected = torch.from_numpy(frames[:, :, 32:256]).permute(3, 0, 1, 2).float() / 127.5 - 1
    assert torch.allclose(x, expected, atol=1e-6)
    small = fvd.preprocess(frames[:, :32, :48])
    assert small.shape == (3, 4, 224, 224) and -1 <= float(small.min()) <= float(small.max()) <= 1


def test_features_come_from_the_torchscript_file(weights) -> None:
    detector = fvd.load_detector(weights)
    rng = np.random.default_rng(6)
    clips = [(f"v{i}", rng.integers(0, 256, size=(8, 32, 48, 3), dtype=np.uint8)) for i in range(5)]
    features = fvd.extract_features(detector, clips, batch_size=2)
    assert features.shape == (5, FEATURES) and features.dtype == np.float64
    one = fvd.extract_features(detector, clips[:1], batch_size=1)
    assert np.allclose(one, features[:1], atol=1e-5)


def test_corrupt_weights_are_named(tmp_path) -> None:
    bad = tmp_path / "i3d_torchscript.pt"
    bad.write_bytes(np.random.default_rng(7).bytes(4096))
    with pytest.raises(fvd.FvdError, match=f"{bad}: not a TorchScript module"):
        fvd.load_detector(bad)
    with pytest.raises(fvd.FvdError, match="weights not found"):
        fvd.load_detector(tmp_path / "missing.pt")


def test_a_module_without_the_i3d_signature_is_named(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.jit.save(torch.jit.script(_OnlyX()), str(path))
    detector = fvd.load_detector(path)
    clips = [("v0", np.zeros((8, 32, 48, 3), dtype=np.uint8))]
    with pytest.raises(fvd.FvdError, match=f"{path}: the detector call"):
        fvd.extract_features(detector, clips, weights=path)


# ---------------------------------------------------------------- sora-tta fvd
VIDEOS = [f"v_Test_g0{i}_c01" for i in range(1, 6)]


@pytest.fixture(scope="module")
def study(tmp_path_factory, clip_maker) -> Path:
    """Five videos (4 test, 1 validation); baseline generations brightened in the
    continuation, the variant's a faithful copy with light noise; one variant failure."""
    root = tmp_path_factory.mktemp("fvd_study")
    rng = np.random.default_rng(8)
    rows = []
    for i, video in enumerate(VIDEOS):
        truth = rng.integers(20, 200, size=(65, 32, 48, 3), dtype=np.uint8)
        clip_maker.write(root / "clips" / f"{video}.mkv", truth)
        noisy = np.clip(truth.astype(int) + rng.integers(-3, 4, size=truth.shape), 0, 255)
        bright = truth.astype(int)
        bright[33:] = np.clip(bright[33:] + 50, 0, 255)
        for method, frames in (("baseline", bright), ("r4", noisy)):
            folder = root / "generations" / method / video
            folder.mkdir(parents=True)
            outcome = "failed" if (method, i) == ("r4", 1) else "ok"
            (folder / "meta.json").write_text(json.dumps({"outcome": outcome}))
            if outcome == "ok":
                clip_maker.write(folder / "video.mkv", frames.astype(np.uint8))
        role = "validation" if i == 4 else "test"
        rows.append({"video_id": video, "class_name": "Test", "status": "ok", "role": role})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def _fvd_argv(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "fvd", "--generations-dir", str(root / "generations"), "--clips-dir", str(root / "clips"),
        "--manifest", str(root / "manifest.csv"), "--methods", "baseline,r4",
        "--final-variants", "r4", "--out", str(out), "--bootstrap", "50", "--seed", "3",
        "--device", "cpu", *extra,
    ]  # fmt: skip


def test_fvd_command_end_to_end(study, weights, tmp_path, invoke) -> None:
    out = tmp_path / "aggregate" / "fvd.csv"
    assert invoke(_fvd_argv(study, out, "--weights", str(weights), "--batch-size", "2")) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == fvd.FVD_COLUMNS
    assert list(zip(table["role"], table["method"], table["n_videos"], strict=True)) == [
        ("test", "baseline", 4), ("test", "r4", 3), ("validation", "baseline", 1),
        ("validation", "r4", 1),
    ]  # fmt: skip
    test = table[table["role"] == "test"].set_index("method")
    # the faithful variant is closer to the ground truth than the brightened baseline
    assert test.loc["r4", "fvd"] < test.loc["r4", "baseline_fvd"]
    assert test.loc["r4", "diff"] == pytest.approx(
        test.loc["r4", "fvd"] - test.loc["r4", "baseline_fvd"]
    )
    assert test.loc["r4", "diff_ci_low"] <= test.loc["r4", "diff_ci_high"] < 0
    assert test.loc["baseline", "fvd"] > 0 and np.isnan(test.loc["baseline", "diff"])
    assert set(table["weights_sha256"]) == {hashlib.sha256(weights.read_bytes()).hexdigest()}
    assert set(table["frames"]) == {"34-65"} and set(table["input"]) == {"32x224x224"}
    assert (test["feature_dim"] == FEATURES).all() and test["skipped"].isna().all()
    validation = table[table["role"] == "validation"]
    assert validation["skipped"].str.contains("at least 2").all()
    assert not list(out.parent.glob(".*"))


def test_fvd_without_weights_is_skipped_with_a_reason(study, tmp_path, invoke) -> None:
    out = tmp_path / "fvd.csv"
    assert invoke(_fvd_argv(study, out)) == 0
    table = pd.read_csv(out)
    assert list(table["method"]) == ["baseline", "r4"] and table["fvd"].isna().all()
    assert (table["skipped"] == fvd.NO_WEIGHTS_REASON).all()
    assert "evaluation.fvd_weights" in fvd.NO_WEIGHTS_REASON


def test_fvd_command_names_corrupt_weights_and_writes_nothing(study, tmp_path, invoke) -> None:
    bad = tmp_path / "i3d_torchscript.pt"
    bad.write_bytes(np.random.default_rng(9).bytes(2048))
    out = tmp_path / "fvd.csv"
    with pytest.raises(CommandError, match=f"{bad}: not a TorchScript module"):
        invoke(_fvd_argv(study, out, "--weights", str(bad)))
    assert not out.exists()


def test_fvd_command_names_a_damaged_clip(study, weights, tmp_path, invoke) -> None:
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    clip = copy / "clips" / f"{VIDEOS[2]}.mkv"
    clip.write_bytes(b"not a video")
    out = tmp_path / "fvd.csv"
    with pytest.raises(CommandError, match=str(clip)):
        invoke(_fvd_argv(copy, out, "--weights", str(weights)))
    assert not out.exists()


def test_without_final_variants_only_the_baseline_is_scored_on_test(
    study, tmp_path, invoke
) -> None:
    """An empty --final-variants (statistics.final_variants: []): exploratory variants run
    on the validation videos only, so they get no test row."""
    out = tmp_path / "fvd.csv"
    argv = _fvd_argv(study, out)
    argv[argv.index("--final-variants") + 1] = ""
    assert invoke(argv) == 0  # without weights: the skip rows name every method
    assert list(pd.read_csv(out)["method"]) == ["baseline", "r4"]
    roles = {"v1": "test", "v2": "test", "v3": "validation"}
    sets = fvd.fvd_sets(roles, ["baseline", "r4"], "baseline", [], lambda m, v: True)
    assert [(s.role, s.method, s.videos) for s in sets] == [
        ("test", "baseline", ("v1", "v2")),
        ("validation", "baseline", ("v3",)),
        ("validation", "r4", ("v3",)),
    ]
    no_split = fvd.fvd_sets({"v1": "test"}, ["baseline", "r4"], "baseline", [], lambda m, v: True)
    assert [s.method for s in no_split] == ["baseline", "r4"]
