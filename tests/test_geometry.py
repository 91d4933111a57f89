"""Crops, labels, ltrb encodings and boxes against values worked out by hand."""

import math

import numpy as np
import pytest

from tomp_deploy.runtime.geometry import (
    argmax2d,
    box_in_crop,
    clip_box,
    decode_ltrb,
    encode_ltrb,
    gaussian_label,
    iou,
    sample_location,
    sample_patch,
)


def coordinate_image(height: int, width: int) -> np.ndarray:
    """Channel 0 = row, channel 1 = column, channel 2 = constant: pixel values tell where they came from."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([rows, cols, np.full_like(rows, 7)], axis=2)


def bilinear(patch: np.ndarray, size: int) -> np.ndarray:
    """Independent float64 bilinear resize with pixel centres aligned (no antialiasing)."""

    def axis_weights(n_in):
        src = np.clip((np.arange(size) + 0.5) * n_in / size - 0.5, 0, n_in - 1)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    y0, y1, wy = axis_weights(patch.shape[0])
    x0, x1, wx = axis_weights(patch.shape[1])
    p = patch.astype(np.float64)
    top = p[y0][:, x0] * (1 - wx)[None, :, None] + p[y0][:, x1] * wx[None, :, None]
    bottom = p[y1][:, x0] * (1 - wx)[None, :, None] + p[y1][:, x1] * wx[None, :, None]
    return top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]


def test_interior_crop_coordinates_and_pixels():
    image = coordinate_image(100, 120)
    patch = sample_patch(image, np.array([50.0, 60.0]), np.array([21.0, 21.0]), 21)
    # 21 px centred at (50, 60): top-left 50 - 10 = 40, bottom-right 50 + 10.5 + 1 = 61.5 (exclusive).
    np.testing.assert_allclose(patch.coords, [40, 50, 61.5, 71.5])
    assert patch.pixels.shape == (21, 21, 3)
    np.testing.assert_array_equal(patch.pixels[:, 0, 0], np.arange(40, 61))
    np.testing.assert_array_equal(patch.pixels[0, :, 1], np.arange(50, 71))


def test_border_pixels_replicate_the_edge():
    image = coordinate_image(30, 30)
    patch = sample_patch(image, np.array([2.0, 3.0]), np.array([11.0, 11.0]), 11)
    # Rows -3..7 and columns -2..8: outside rows/columns repeat row 0 / column 0.
    np.testing.assert_allclose(patch.coords, [-3, -2, 8.5, 9.5])
    np.testing.assert_array_equal(patch.pixels[:, 0, 0], [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(patch.pixels[0, :, 1], [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])


def test_resampling_is_bilinear_with_aligned_centres():
    image = coordinate_image(100, 100) * 1.7
    image[..., 2] = np.random.default_rng(0).uniform(0, 255, (100, 100))
    patch = sample_patch(image, np.array([50.0, 50.0]), np.array([40.0, 40.0]), 288)
    source = image[30:71, 30:71]  # 40 px: rows 50-19.5=30.5 -> 30 .. 50+20+1=71 (exclusive)
    np.testing.assert_allclose(patch.pixels, bilinear(source, 288), atol=2e-3)


def test_inside_major_shifts_the_crop_into_the_image():
    image = coordinate_image(200, 300)
    patch = sample_patch(image, np.array([20.0, 280.0]), np.array([100.0, 100.0]), 100, mode="inside_major", max_scale_change=1.5)
    # The region fits: it is moved down by 29.5 and left by 31 px, so it touches the top and right edges.
    np.testing.assert_allclose(patch.coords, [0, 199.5, 100.5, 300])
    assert patch.pixels[..., 0].min() >= 0 and patch.pixels[..., 1].max() <= 299


def test_inside_major_larger_than_image_centres_major_dimension():
    image = coordinate_image(100, 400)
    patch = sample_patch(image, np.array([50.0, 200.0]), np.array([150.0, 150.0]), 50, mode="inside_major", max_scale_change=1.5)
    # The width (major) fits, so no shrink; decimation 2 (150/50 = 3 -> int(2.9)); the 75-row decimated
    # crop cannot fit 50 rows: shifted, then centred so that it sticks out equally above and below.
    np.testing.assert_allclose(patch.coords, [-24, 126, 127, 277])


def test_inside_shrinks_at_most_max_scale_change():
    image = coordinate_image(100, 100)
    patch = sample_patch(image, np.array([50.0, 50.0]), np.array([300.0, 300.0]), 100, mode="inside", max_scale_change=1.5)
    # 300 px shrinks by the clamped factor 1.5 to 200 px, still twice the image: tl -49.5 -> shifted
    # by 49.5 - 51 = -1.5 -> centred by +1 -> (-50, 150.5).
    np.testing.assert_allclose(patch.coords, [-50, -50, 150.5, 150.5])


def test_pre_downsampling_of_large_crops():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, (600, 600, 3)).astype(np.float32)
    patch = sample_patch(image, np.array([300.0, 300.0]), np.array([900.0, 900.0]), 288)
    # 900/288 = 3.125 -> decimation int(3.025) = 3: every third pixel from offset 300 % 3 = 0, a 300 px
    # crop centred at 100 in the 200 px decimated image (rows -49..250, replicated outside).
    np.testing.assert_allclose(patch.coords, [-148.5, -148.5, 753, 753])
    decimated = image[::3, ::3]
    index = np.clip(np.arange(-49, 251), 0, 199)
    np.testing.assert_allclose(patch.pixels, bilinear(decimated[index][:, index], 288), atol=2e-2)


def test_sample_location():
    pos, scale = sample_location(np.array([10.0, 20.0, 298.0, 308.0]), 288)
    np.testing.assert_allclose(pos, [153.5, 163.5])
    assert scale == pytest.approx(1.0)


def test_gaussian_label_peak_and_width():
    sigma = 1.5
    label = gaussian_label(18, sigma, np.array([0.0, 0.0]))
    # The origin lies between cells 8 and 9: the four central cells share the maximum.
    expected_peak = math.exp(-0.5 * (0.25 + 0.25) / sigma**2)
    np.testing.assert_allclose(label[8:10, 8:10], expected_peak, rtol=1e-6)
    assert label.max() == pytest.approx(expected_peak)
    shifted = gaussian_label(18, sigma, np.array([2.5, -3.5]))  # peak exactly on cell (11, 5)
    assert np.unravel_index(shifted.argmax(), shifted.shape) == (11, 5)
    assert shifted[11, 5] == pytest.approx(1.0)
    assert shifted[11, 6] == pytest.approx(math.exp(-0.5 / sigma**2))


def test_ltrb_encoding_by_hand():
    box = np.array([100.0, 50.0, 40.0, 20.0])
    ltrb = encode_ltrb(box, 18, 16)
    # Cell (row 3, col 6) has centre (x 104, y 56).
    np.testing.assert_allclose(ltrb[:, 3, 6], np.array([4, 6, 36, 14]) / 288, rtol=1e-6)
    # Cell (0, 0) at (8, 8): left of and above the box -> negative l and t.
    np.testing.assert_allclose(ltrb[:, 0, 0], np.array([-92, -42, 132, 62]) / 288, rtol=1e-6)


@pytest.mark.parametrize("coords", [[0, 0, 288, 288], [20, 10, 596, 586]])
def test_decode_inverts_encode(coords):
    coords = np.array(coords, dtype=np.float64)
    box_in_crop_pixels = np.array([100.0, 50.0, 40.0, 20.0])
    ltrb = encode_ltrb(box_in_crop_pixels, 18, 16)
    scale = (coords[2] - coords[0]) / 288
    expected = np.array([coords[1] + 100 * scale, coords[0] + 50 * scale, 40 * scale, 20 * scale])
    for cell in [(3, 6), (10, 2), (0, 17)]:
        np.testing.assert_allclose(decode_ltrb(ltrb, cell, coords, 288, 16), expected, rtol=1e-5)


def test_box_in_crop():
    box = box_in_crop(np.array([100.0, 200.0]), np.array([20.0, 40.0]), np.array([100.0, 200.0]), 2.0, 288)
    # Centred target of 40x20 px at half scale: 20x10 around the crop centre 143.5.
    np.testing.assert_allclose(box, [143.5 - 9.5, 143.5 - 4.5, 20, 10])


@pytest.mark.parametrize(
    "box,expected",
    [
        ([10, 20, 30, 20], [10, 20, 30, 20]),
        ([10, 20, 30, 40], [10, 20, 30, 30]),
        ([-5, -5, 30, 40], [0, 0, 25, 35]),
        ([95, 45, 30, 30], [90, 40, 10, 10]),
        ([200, 200, 5, 5], [90, 40, 10, 10]),
    ],
)
def test_clip_box(box, expected):
    np.testing.assert_allclose(clip_box(np.array(box, float), 100, 50, 10), expected)


def test_argmax_tie_order_is_first_column_then_first_row():
    scores = np.zeros((4, 4))
    scores[2, 1] = scores[0, 3] = scores[3, 1] = 1.0
    assert argmax2d(scores)[1].tolist() == [2, 1]


def test_iou():
    assert iou(np.array([0, 0, 10, 10]), np.array([5, 0, 10, 10]))[0] == pytest.approx(50 / 150)
    assert iou(np.array([0, 0, 10, 10]), np.array([20, 20, 5, 5]))[0] == 0.0
