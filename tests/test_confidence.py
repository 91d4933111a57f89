"""Long-term mode's calibrated confidence (`runtime.confidence`): the score-map features against values
computed by hand, the logistic model, the appearance cues, and the fit (`evaluation.calibration`) against
scikit-learn's own predictions."""

import dataclasses
import math

import numpy as np
import pytest

from tomp_deploy.evaluation.calibration import CalibrationSamples, LabelledFeatures, fit_calibration
from tomp_deploy.runtime.confidence import CANDIDATE, FEATURES, PRESENCE, Appearance, score_map_features
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.presets import TrackerParams


def test_a_single_peak_on_a_flat_map():
    scores = np.zeros((9, 9), np.float32)
    scores[4, 4] = 0.8
    peak, sidelobe, second, entropy = score_map_features(scores, np.array([3.0, 3.0]))
    assert peak == pytest.approx(0.8)
    # outside the 3 x 3 neighbourhood every score is 0: mean 0, deviation 0 (+ 1e-3)
    assert sidelobe == pytest.approx(math.log1p(0.8 / 1e-3))
    assert second == 0.0
    assert entropy == 0.0, "all the mass on one cell"


def test_two_equal_peaks_and_a_uniform_map():
    scores = np.zeros((8, 8))
    scores[1, 1] = scores[6, 6] = 0.5
    peak, _, second, entropy = score_map_features(scores, np.array([2.0, 2.0]))
    assert (peak, second) == (0.5, 1.0)
    assert entropy == pytest.approx(math.log(2) / math.log(64))
    uniform = np.full((8, 8), 0.3)
    _, sidelobe, second, entropy = score_map_features(uniform, np.array([2.0, 2.0]))
    assert (sidelobe, second) == (0.0, 1.0) and entropy == pytest.approx(1.0)
    _, _, _, entropy = score_map_features(-uniform, np.array([2.0, 2.0]))
    assert entropy == 1.0, "a map without a positive score says nothing: as flat as can be"


def test_the_logistic_models_by_hand():
    weights = dict(zip((f"lt_weight_{name}" for name in FEATURES), (1.0, -2.0, 0.5, 0.0, 3.0, 0.25)))
    candidate_weights = {f"lt_candidate_weight_{name}": 0.0 for name in FEATURES} | {"lt_candidate_weight_colour": 2.0}
    params = TrackerParams(lt_calibration_bias=-1.5, **weights, lt_candidate_bias=0.5, **candidate_weights)
    features = np.array([0.6, 1.0, 0.2, 0.4, 0.9, -0.4])
    logit = -1.5 + 0.6 - 2.0 + 0.1 + 0.0 + 2.7 - 0.1
    assert PRESENCE.probability(features, params) == pytest.approx(1 / (1 + math.exp(-logit)))
    assert PRESENCE.probability(features * 1e6, params) == pytest.approx(1.0), "a huge logit saturates, never overflows"
    assert CANDIDATE.probability(features, params) == pytest.approx(1 / (1 + math.exp(-(0.5 + 1.8)))), "its own weights"
    assert CANDIDATE.parameters(params) == {"lt_candidate_bias": 0.5, **candidate_weights}


def test_appearance_compares_colours_and_layout_with_the_target():
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[30:60, 20:60, 0] = np.linspace(100, 250, 40).astype(np.uint8)  # a red ramp on black
    frame[30:60, 20:60, 1:] = 20
    target = np.array([20.0, 30.0, 40.0, 30.0])
    look = Appearance(frame, target)
    np.testing.assert_allclose(look.similarity(frame, target), [1.0, 1.0])
    recoloured = frame.copy()
    recoloured[30:60, 20:60] = 255 - recoloured[30:60, 20:60]
    colour, layout = look.similarity(recoloured, target)
    assert colour < 0.5 and layout < -0.9, "an inverted patch: other colours, the opposite layout"
    np.testing.assert_array_equal(look.similarity(frame, np.array([500.0, 500, 10, 10])), [0.0, 0.0])
    dimmed = (frame * 0.6).round().astype(np.uint8)
    colour, layout = look.similarity(dimmed, target)
    assert colour > 0.95 and layout > 0.99, "a change of lighting scales every pixel: the same colours, the same layout"
    look.remember(recoloured, target)
    np.testing.assert_allclose(look.similarity(recoloured, target), [1.0, 1.0], err_msg="the newest memory frame's look counts")
    np.testing.assert_allclose(look.similarity(frame, target), [1.0, 1.0], err_msg="and the annotated one's still does")


UNTRAINED = TrackerParams(**{name: 0.0 for name in PRESENCE.parameters(TrackerParams()) | CANDIDATE.parameters(TrackerParams())})


def labelled(rng, count: int) -> LabelledFeatures:
    """Features around typical values, on the target where colour and peak are high."""
    features = rng.normal([0.5, 2.0, 0.6, 0.5, 0.7, 0.3], [0.2, 1.0, 0.3, 0.2, 0.15, 0.3], (count, len(FEATURES)))
    return LabelledFeatures(features, features[:, 4] + 0.3 * features[:, 0] + rng.normal(0, 0.05, count) > 0.85)


def test_the_fit_is_scikit_learns_folded_into_raw_weights():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    frames, candidates = labelled(rng, 400), labelled(rng, 300)
    candidates.on_target = ~candidates.on_target  # another relation, so that the two fits must differ
    fitted, report = fit_calibration(CalibrationSamples(frames, candidates), UNTRAINED)
    for model, samples, fit in ((PRESENCE, frames, report.presence), (CANDIDATE, candidates, report.candidate)):
        scaler = StandardScaler().fit(samples.features)
        expected = LogisticRegression(max_iter=1000).fit(scaler.transform(samples.features), samples.on_target)
        ours = np.array([model.probability(f, fitted) for f in samples.features])
        np.testing.assert_allclose(ours, expected.predict_proba(scaler.transform(samples.features))[:, 1], atol=1e-9)
        assert fit.auc_after > 0.95 and fit.auc_before == 0.5, "untrained weights: one probability for every sample"
        assert fit.log_loss_after < fit.log_loss_before and fit.samples == len(samples.on_target)
    untouched = {name: 0.0 for name in PRESENCE.parameters(fitted) | CANDIDATE.parameters(fitted)}
    assert dataclasses.replace(fitted, **untouched) == UNTRAINED, "only the two models' parameters change"


def test_a_fit_needs_frames_on_and_off_the_target_and_keeps_a_candidate_model_it_cannot_fit():
    features = np.zeros((100, len(FEATURES)))
    none = LabelledFeatures(np.zeros((0, len(FEATURES))), np.zeros(0, bool))
    with pytest.raises(ToMPError, match="needs at least 20 frames where the tracker is on the target"):
        fit_calibration(CalibrationSamples(LabelledFeatures(features, np.arange(100) < 5), none), TrackerParams())
    rng = np.random.default_rng(2)
    few = labelled(rng, 30)
    fitted, report = fit_calibration(CalibrationSamples(labelled(rng, 200), few), UNTRAINED)
    assert report.candidate is None and CANDIDATE.parameters(fitted) == CANDIDATE.parameters(UNTRAINED)
    assert PRESENCE.parameters(fitted) != PRESENCE.parameters(UNTRAINED)
