"""Long-term mode's calibrated confidence (`runtime.confidence`): the score-map features against values
computed by hand, the logistic model, the appearance cues, and the fit (`evaluation.calibration`) against
scikit-learn's own predictions."""

import dataclasses
import math

import numpy as np
import pytest

from tomp_deploy.evaluation.calibration import CalibrationSamples, fit_calibration
from tomp_deploy.runtime.confidence import FEATURES, Appearance, calibrated_confidence, score_map_features
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


def test_the_logistic_model_by_hand():
    weights = dict(zip((f"lt_weight_{name}" for name in FEATURES), (1.0, -2.0, 0.5, 0.0, 3.0, 0.25)))
    params = TrackerParams(lt_calibration_bias=-1.5, **weights)
    features = np.array([0.6, 1.0, 0.2, 0.4, 0.9, -0.4])
    logit = -1.5 + 0.6 - 2.0 + 0.1 + 0.0 + 2.7 - 0.1
    assert calibrated_confidence(features, params) == pytest.approx(1 / (1 + math.exp(-logit)))
    assert calibrated_confidence(features * 1e6, params) == pytest.approx(1.0), "a huge logit saturates, never overflows"


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
    look.remember(recoloured, target)
    np.testing.assert_allclose(look.similarity(recoloured, target), [1.0, 1.0], err_msg="the newest memory frame's look counts")
    np.testing.assert_allclose(look.similarity(frame, target), [1.0, 1.0], err_msg="and the annotated one's still does")


UNTRAINED = TrackerParams(lt_calibration_bias=0.0, **{f"lt_weight_{name}": 0.0 for name in FEATURES})


def test_the_fit_is_scikit_learns_folded_into_raw_weights():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    features = rng.normal([0.5, 2.0, 0.6, 0.5, 0.7, 0.3], [0.2, 1.0, 0.3, 0.2, 0.15, 0.3], (400, len(FEATURES)))
    on_target = features[:, 4] + 0.3 * features[:, 0] + rng.normal(0, 0.05, 400) > 0.85
    fitted, report = fit_calibration(CalibrationSamples(features, on_target), UNTRAINED)
    scaler = StandardScaler().fit(features)
    expected = LogisticRegression(max_iter=1000).fit(scaler.transform(features), on_target)
    ours = np.array([calibrated_confidence(f, fitted) for f in features])
    np.testing.assert_allclose(ours, expected.predict_proba(scaler.transform(features))[:, 1], atol=1e-9)
    assert report.auc_after > 0.95 and report.auc_before == 0.5, "untrained weights: one confidence for every frame"
    assert report.log_loss_after < report.log_loss_before
    assert dataclasses.replace(fitted, lt_calibration_bias=0.0, **{f"lt_weight_{n}": 0.0 for n in FEATURES}) == UNTRAINED


def test_a_fit_needs_frames_on_and_off_the_target():
    features = np.zeros((100, len(FEATURES)))
    with pytest.raises(ToMPError, match="needs at least 20 frames where the tracker is on the target"):
        fit_calibration(CalibrationSamples(features, np.arange(100) < 5), TrackerParams())
