"""Metrics on hand-made cases with known answers, and SSIM against tf.image.ssim / skimage."""

import math

import numpy as np
import pytest

from ebgan_tf import metrics

SIZE = 32


def random_images(seed: int, n: int = 3, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def box_mask(n: int = 3) -> np.ndarray:
    """Rows 8..19, columns 6..25."""
    mask = np.zeros((n, SIZE, SIZE, 1), np.float32)
    mask[:, 8:20, 6:26] = 1.0
    return mask


def test_identical_images_score_perfectly():
    images = random_images(0)
    mask = box_mask()
    np.testing.assert_array_equal(metrics.masked_l1(images, images, mask), np.zeros(3))
    np.testing.assert_array_equal(metrics.masked_psnr(images, images, mask), np.full(3, np.inf))
    np.testing.assert_array_equal(metrics.masked_psnr(images, images, mask, max_psnr=100.0), np.full(3, 100.0))
    np.testing.assert_allclose(metrics.masked_ssim(images, images, mask), np.ones(3), atol=1e-12)
    np.testing.assert_array_equal(metrics.max_abs_diff_outside(images, images, mask), np.zeros(3))


@pytest.mark.parametrize("shift", [1, 5, 40])
def test_constant_shift_gives_known_l1_and_psnr(shift):
    images = np.random.default_rng(1).integers(0, 200, (2, SIZE, SIZE, 3), dtype=np.uint8)
    shifted = images + np.uint8(shift)
    mask = box_mask(n=2)
    np.testing.assert_allclose(metrics.masked_l1(images, shifted, mask), [shift, shift])
    expected = 20.0 * math.log10(255.0 / shift)
    np.testing.assert_allclose(metrics.masked_psnr(images, shifted, mask), [expected, expected])
    np.testing.assert_allclose(metrics.masked_psnr(shifted, images, mask), [expected, expected])  # no uint8 wrap
    np.testing.assert_allclose(metrics.max_abs_diff_outside(images, shifted, mask), [shift, shift])


def test_float_images_use_data_range():
    images = np.random.default_rng(2).uniform(-1.0, 0.9, (2, SIZE, SIZE, 3))
    mask = box_mask(n=2)
    expected = 20.0 * math.log10(2.0 / 0.1)
    np.testing.assert_allclose(metrics.masked_psnr(images, images + 0.1, mask, data_range=2.0), [expected] * 2)
    scaled = images * 127.5  # SSIM is invariant to scaling the images and data_range together
    np.testing.assert_allclose(
        metrics.masked_ssim(images, images + 0.1, mask, data_range=2.0),
        metrics.masked_ssim(scaled, scaled + 0.1 * 127.5, mask, data_range=255.0),
    )


def test_known_swap_scores_exactly():
    # Face A is flat grey 10; the exemplar's region is 50. Ground truth = A with the region taken from B.
    a = np.full((1, SIZE, SIZE, 3), 10, np.uint8)
    mask = box_mask(n=1)
    truth = np.where(mask == 1, np.uint8(50), a)
    copy_of_a = a  # a model that ignores the exemplar
    assert metrics.masked_l1(truth, truth, mask)[0] == 0.0
    assert metrics.masked_l1(copy_of_a, truth, mask)[0] == 40.0
    assert metrics.masked_psnr(copy_of_a, truth, mask)[0] == pytest.approx(20.0 * math.log10(255.0 / 40.0))
    assert metrics.masked_ssim(copy_of_a, truth, mask)[0] < 0.5
    assert metrics.max_abs_diff_outside(copy_of_a, truth, mask)[0] == 0.0
    # A wrong edit that also touches one pixel outside the region is caught with its exact size.
    leaky = truth.copy()
    leaky[0, 0, 0, 1] = 13
    assert metrics.max_abs_diff_outside(leaky, truth, mask)[0] == 3.0


def test_per_image_results_follow_each_mask():
    a = np.zeros((2, SIZE, SIZE, 3), np.uint8)
    b = a.copy()
    b[1, 10:12, 10:12] = 100  # only image 1 differs, in a 2 x 2 patch
    mask = box_mask(n=2)
    np.testing.assert_allclose(metrics.masked_l1(a, b, mask), [0.0, 100.0 * 4 / (12 * 20)])
    mask[1] = 0.0
    mask[1, 10:12, 10:12] = 1.0  # the mask is exactly the changed patch
    np.testing.assert_allclose(metrics.masked_l1(a, b, mask), [0.0, 100.0])


def test_pixels_outside_the_mask_do_not_change_masked_l1_and_psnr():
    a, b = random_images(3), random_images(4)
    mask = box_mask()
    changed = b.copy()
    changed[mask[..., 0] == 0] = 255 - changed[mask[..., 0] == 0]
    np.testing.assert_array_equal(metrics.masked_l1(a, b, mask), metrics.masked_l1(a, changed, mask))
    np.testing.assert_array_equal(metrics.masked_psnr(a, b, mask), metrics.masked_psnr(a, changed, mask))
    assert np.all(metrics.max_abs_diff_outside(a, b, mask) != metrics.max_abs_diff_outside(a, changed, mask))


def test_ssim_map_is_restricted_to_the_mask():
    a, b = random_images(5), random_images(6)
    mask = box_mask()
    ssim = metrics.ssim_map(a, b)
    assert ssim.shape == (3, SIZE, SIZE)
    inside = mask[..., 0] == 1
    np.testing.assert_allclose(metrics.masked_ssim(a, b, mask), [ssim[i][inside[i]].mean() for i in range(3)])
    # Far from the mask (beyond the 11 x 11 window), outside pixels cannot change the masked SSIM.
    far = b.copy()
    far[:, 28:] = 0  # rows 28+; the mask ends at row 19, its windows at row 24
    np.testing.assert_allclose(metrics.masked_ssim(a, b, mask), metrics.masked_ssim(a, far, mask))


def test_single_image_gives_a_scalar():
    a, b = random_images(7, n=1), random_images(8, n=1)
    mask = box_mask(n=1)
    for name in ("masked_l1", "masked_psnr", "masked_ssim", "max_abs_diff_outside"):
        fn = getattr(metrics, name)
        single = fn(a[0], b[0], mask[0])
        assert np.ndim(single) == 0
        assert single == pytest.approx(fn(a, b, mask)[0])


def border_mask(n: int, size: int) -> np.ndarray:
    """1 where the 11 x 11 window lies inside the image: the pixels tf.image.ssim averages over."""
    mask = np.zeros((n, size, size, 1))
    mask[:, 5:-5, 5:-5] = 1.0
    return mask


def correlated_pair(seed: int, n: int = 4, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (n, size, size, 3))
    b = np.clip(a + rng.integers(-60, 61, a.shape), 0, 255)
    return a.astype(np.uint8), b.astype(np.uint8)


def test_ssim_matches_tf_image_ssim():
    tf = pytest.importorskip("tensorflow")
    a, b = correlated_pair(9)
    expected = tf.image.ssim(tf.constant(a), tf.constant(b), max_val=255).numpy()
    np.testing.assert_allclose(metrics.masked_ssim(a, b, border_mask(4, 48)), expected, atol=1e-5)
    # A full mask adds the border pixels (mirror-padded windows), so it is close but not identical.
    np.testing.assert_allclose(metrics.masked_ssim(a, b, np.ones((4, 48, 48, 1))), expected, atol=0.03)


def test_ssim_matches_skimage():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    a, b = correlated_pair(10)
    ours_inner = metrics.masked_ssim(a, b, border_mask(4, 48))
    ours_full = metrics.masked_ssim(a, b, np.ones((4, 48, 48, 1)))
    for i in range(4):
        score, full_map = skimage_metrics.structural_similarity(
            a[i],
            b[i],
            data_range=255,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            full=True,
        )
        assert ours_inner[i] == pytest.approx(score, abs=1e-9)
        assert ours_full[i] == pytest.approx(full_map.mean(), abs=1e-9)


@pytest.mark.parametrize("name", ["masked_l1", "masked_psnr", "masked_ssim"])
def test_empty_mask_is_an_error_naming_the_image(name):
    a, b = random_images(11), random_images(12)
    mask = box_mask()
    mask[1] = 0.0
    with pytest.raises(ValueError, match=r"empty.*\[1\]"):
        getattr(metrics, name)(a, b, mask)


def test_full_mask_leaves_nothing_outside():
    a, b = random_images(13), random_images(14)
    np.testing.assert_array_equal(metrics.max_abs_diff_outside(a, b, np.ones((3, SIZE, SIZE, 1))), np.zeros(3))


@pytest.mark.parametrize(
    "b_shape, mask_shape, mask_value, message",
    [
        ((3, SIZE, SIZE, 3), (3, SIZE, SIZE, 3), 1.0, "Mask shape"),
        ((3, SIZE, SIZE, 3), (2, SIZE, SIZE, 1), 1.0, "Mask shape"),
        ((3, SIZE, 16, 3), (3, SIZE, SIZE, 1), 1.0, "differ in shape"),
        ((3, SIZE, SIZE, 3), (3, SIZE, SIZE, 1), 0.5, "0 or 1"),
    ],
)
def test_bad_inputs_are_rejected(b_shape, mask_shape, mask_value, message):
    a = np.zeros((3, SIZE, SIZE, 3), np.uint8)
    with pytest.raises(ValueError, match=message):
        metrics.masked_l1(a, np.zeros(b_shape, np.uint8), np.full(mask_shape, mask_value))


def test_colour_share_measures_the_move_of_the_mean_colour_toward_the_target():
    source, target, mask = random_images(0), random_images(1), box_mask()
    assert metrics.colour_share(target, source, target, mask) == pytest.approx(1.0)
    assert metrics.colour_share(source, source, target, mask) == 0.0
    halfway = (source.astype(np.float64) + target) / 2
    assert metrics.colour_share(halfway, source, target, mask) == pytest.approx(0.5)
    # Only the mean colour inside the mask counts: noise with zero mean there, and changes outside, do not.
    noisy = halfway.copy()
    noisy[:, 8:20, 6:16] += 7.0
    noisy[:, 8:20, 16:26] -= 7.0
    noisy[:, :8] = 0.0
    assert metrics.colour_share(noisy, source, target, mask) == pytest.approx(0.5)
    assert metrics.colour_share(target[0], source[0], target[0], mask[0]) == pytest.approx(1.0)


def test_colour_share_is_undefined_when_no_target_changes_colour():
    source = random_images(0)
    assert math.isnan(metrics.colour_share(random_images(1), source, source, box_mask()))
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.colour_share(source, source, source[:, :16], box_mask())


def test_agreement_per_attribute_and_mean():
    target = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 1]])
    pred = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [1, 1, 0]], bool)
    rates = metrics.agreement(pred, target)
    np.testing.assert_allclose(rates.per_attribute, [0.75, 0.75, 0.5])
    assert rates.mean == pytest.approx(2.0 / 3.0)
    assert metrics.agreement(target, target).mean == 1.0


def test_leak_rate_counts_only_dropped_attributes():
    dropped = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    pred = np.array([[1, 1, 1], [0, 1, 1], [0, 1, 0], [0, 0, 1]])
    rates = metrics.leak_rate(pred, dropped)
    np.testing.assert_allclose(rates.per_attribute[:2], [1.0 / 3.0, 0.5])
    assert np.isnan(rates.per_attribute[2])  # never dropped
    assert rates.mean == pytest.approx((1.0 / 3.0 + 0.5) / 2.0)


def test_kept_agreement_ignores_dropped_pairs():
    target = np.array([[0, 1], [0, 1], [1, 0]])
    dropped = np.array([[1, 0], [1, 0], [0, 1]])
    pred = np.array([[1, 1], [1, 0], [1, 1]])  # the dropped pairs disagree; they must not count
    rates = metrics.kept_agreement(pred, target, dropped)
    np.testing.assert_allclose(rates.per_attribute, [1.0, 0.5])
    assert rates.mean == pytest.approx(0.75)


def test_label_errors():
    labels = np.zeros((4, 3))
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.agreement(labels, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="0/1 labels"):
        metrics.agreement(np.full((4, 3), 0.7), labels)
    with pytest.raises(ValueError, match=r"\[N, n_attributes\]"):
        metrics.agreement(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="dropped_mask has no 1"):
        metrics.leak_rate(labels, labels)


def test_accumulator_streams_mean_min_max():
    accumulator = metrics.MetricAccumulator()
    accumulator.update(psnr=[30.0, 20.0], agree=np.array([[1, 0], [1, 1]]))
    accumulator.update(psnr=np.array([40.0]), agree=np.array([[0, 0]]))
    accumulator.update(psnr=np.array([]))
    psnr = accumulator.result("psnr")
    assert (psnr["mean"], psnr["min"], psnr["max"], psnr["count"]) == (30.0, 20.0, 40.0, 3)
    np.testing.assert_allclose(accumulator.results()["agree"]["mean"], [2.0 / 3.0, 1.0 / 3.0])
    with pytest.raises(ValueError, match="shape"):
        accumulator.update(psnr=np.zeros((2, 2)))
    with pytest.raises(KeyError, match="ssim"):
        accumulator.result("ssim")
