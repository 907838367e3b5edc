"""Pixel forensics functions on crafted images where the right answer is known."""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from refundlens.config import Settings
from refundlens.detectors import Context
from refundlens.detectors._pixels_examples import (
    camera_photo,
    cloned,
    encode,
    pasted_with_other_compression,
    screen_photo,
    smoothed_patch,
)
from refundlens.detectors.pixels import PixelsDetector, measure
from refundlens.forensics.copy_move import find_copy_move
from refundlens.forensics.ela import error_level
from refundlens.forensics.jpeg_dct import block_dct, double_quantization
from refundlens.forensics.noise import (
    noise_level,
    noise_level_and_map,
    noise_level_map,
    residual_cooccurrence_map,
)
from refundlens.forensics.spectrum import grid_peaks, moire_peaks, spectral_peaks
from refundlens.media import media_from_bytes


def _f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = float((pred & truth).sum())
    return 2 * tp / max(float(pred.sum() + truth.sum()), 1.0)


def test_dct_coefficients_read_back_from_decoded_pixels_are_the_stored_integers() -> None:
    media = media_from_bytes(encode(camera_photo(2), quality=80), "a.jpg")
    table = np.asarray(media.metadata.jpeg_qtables[0], np.float32).reshape(8, 8)
    ratio = block_dct(media.jpeg_luma) / table
    assert np.abs(ratio - np.rint(ratio)).mean() < 0.06


def test_a_png_has_no_jpeg_luma_plane() -> None:
    assert media_from_bytes(encode(camera_photo(2), "PNG"), "a.png").jpeg_luma is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_turns_stored_maps_exactly_as_pillow_turns_the_image(orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    stored = rng.integers(0, 255, (48, 80, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "PNG", exif=exif.tobytes())
    media = media_from_bytes(buffer.getvalue(), "o.png")
    assert np.array_equal(media.orient(stored), media.analysis)


def test_the_capture_check_and_pixel_forensics_share_one_double_quantization_per_photo() -> None:
    from refundlens.detectors.measured import jpeg_double_quantization

    photo = media_from_bytes(pasted_with_other_compression(), "p.jpg")
    once = jpeg_double_quantization(photo)
    assert once is not None and jpeg_double_quantization(photo) is once
    assert photo.jpeg_luma is not None
    direct = double_quantization(photo.jpeg_luma, photo.metadata.jpeg_qtables[0])
    assert once.periods == direct.periods and once.strength == direct.strength
    assert (
        jpeg_double_quantization(media_from_bytes(encode(camera_photo(1), "PNG"), "p.png")) is None
    )


def test_a_photo_compressed_once_shows_no_double_quantization() -> None:
    media = media_from_bytes(encode(camera_photo(4), quality=85), "once.jpg")
    result = double_quantization(media.jpeg_luma, media.metadata.jpeg_qtables[0])
    assert result.strength < 0.1
    assert len(result.periods) <= 1


def test_a_quantization_table_with_a_zero_step_is_no_evidence_not_nan() -> None:
    """A fuzzing find: a JPEG whose table has a 0 step decodes, and dividing by it made every
    coefficient NaN (then garbage integers)."""
    media = media_from_bytes(pasted_with_other_compression(), "pasted.jpg")
    table = list(media.metadata.jpeg_qtables[0])
    table[5] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in divide"
        result = double_quantization(media.jpeg_luma, table)
    assert result.block_map is None and result.periods == {} and result.strength == 0.0


def test_a_region_pasted_between_two_compressions_stands_out_in_the_block_map() -> None:
    media = media_from_bytes(pasted_with_other_compression(), "pasted.jpg")
    result = double_quantization(media.jpeg_luma, media.metadata.jpeg_qtables[0])
    assert result.block_map is not None and len(result.periods) >= 3
    inside = result.block_map[32:64, 48:88].mean()
    outside = np.concatenate([result.block_map[:28].ravel(), result.block_map[68:].ravel()]).mean()
    assert inside > 0.7 > 0.3 > outside


def test_noise_level_recovers_the_added_noise_within_a_fifth() -> None:
    rng = np.random.default_rng(0)
    flat = np.full((400, 400, 3), 128.0) + rng.normal(0, 5.0, (400, 400, 1))
    estimate = noise_level(np.clip(flat, 0, 255).astype(np.uint8))
    assert 4.0 < estimate < 6.0


def test_the_level_and_the_map_read_together_are_the_numbers_each_gives_alone() -> None:
    photo = camera_photo(3)
    level, tiles = noise_level_and_map(photo, 32)
    assert level == noise_level(photo)
    assert np.array_equal(tiles, noise_level_map(photo, 32), equal_nan=True)


def test_error_level_is_the_largest_channel_difference_to_the_resave_blurred() -> None:
    photo = camera_photo(4)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "JPEG", quality=90)
    resaved = np.asarray(Image.open(buffer).convert("RGB"), np.int16)
    by_hand = np.abs(photo.astype(np.int16) - resaved).max(axis=2).astype(np.float32)
    assert np.array_equal(error_level(photo, smooth_sigma=0), by_hand)


# The maps off by default (bench/results/forensics.md, "Which maps earn their cost"), turned on.
OPTIONAL_MAPS = Settings(
    pixels_residual_enabled=True, pixels_copy_move_enabled=True, pixels_cfa_enabled=True
)


def test_the_maps_off_by_default_do_not_run_and_say_so() -> None:
    media = media_from_bytes(cloned(), "c.jpg")
    default = measure(media, Settings())
    assert default.cooc_map is None and default.copy_move is None and default.cfa_map is None
    (none_found,) = PixelsDetector().findings(media, default, Settings())
    assert none_found.code == "pixels.none_found"
    assert set(none_found.facts["maps_not_run"]) >= {"noise_residual", "copy_move", "cfa"}
    assert "residual_score" not in none_found.facts and "cfa_strength" not in none_found.facts
    assert "noise_residual_heatmap" not in none_found.pictures
    on = measure(media, OPTIONAL_MAPS)
    assert on.cooc_map is not None and on.copy_move is not None
    codes = {f.code for f in PixelsDetector().findings(media, on, OPTIONAL_MAPS)}
    assert "pixels.copy_move" in codes


def test_the_residual_map_localises_a_smoothed_patch() -> None:
    media = media_from_bytes(smoothed_patch(), "s.png")
    heat, separation = residual_cooccurrence_map(media.analysis)
    truth = np.zeros(heat.shape, bool)
    truth[300:520, 350:650] = True
    assert separation > 8
    assert _f1(heat >= 0.5, truth) > 0.6


def test_the_residual_map_of_a_homogeneous_photo_separates_little() -> None:
    media = media_from_bytes(encode(camera_photo(5), "PNG"), "g.png")
    _, separation = residual_cooccurrence_map(media.analysis)
    assert separation < 8


@pytest.mark.parametrize("max_side", [None, 640])
def test_a_cloned_region_is_found_with_its_shift_in_the_input_pixels(max_side: int | None) -> None:
    media = media_from_bytes(cloned(), "c.jpg")
    found = find_copy_move(media.analysis, max_side=max_side)
    assert found is not None
    assert found.mask.shape == media.analysis.shape[:2]
    assert found.inliers >= 14
    assert abs(found.shift_px - 460) < 15
    assert found.mask[300, 220] and found.mask[300, 680]


def test_a_photo_without_clones_has_no_copy_move() -> None:
    media = media_from_bytes(encode(camera_photo(6), quality=92), "n.jpg")
    assert find_copy_move(media.analysis, min_inliers=14) is None


def test_a_photo_of_a_screen_has_moire_peaks_and_a_photo_does_not() -> None:
    screen = media_from_bytes(screen_photo(), "screen.jpg")
    plain = media_from_bytes(encode(camera_photo(7), quality=92), "plain.jpg")
    threshold = Settings().pixels_moire_threshold
    assert moire_peaks(screen.analysis).peak >= threshold
    assert moire_peaks(plain.analysis).peak < threshold


def test_the_shared_spectra_give_the_same_peaks_as_each_search_alone() -> None:
    screen = media_from_bytes(screen_photo(), "screen.jpg").analysis
    upsampled = cv2.resize(camera_photo(3)[:300, :400], (800, 600), interpolation=cv2.INTER_LINEAR)
    for image in (screen, upsampled):
        assert spectral_peaks(image, size=512) == (
            moire_peaks(image, size=512),
            grid_peaks(image, size=512),
        )


def test_error_level_is_higher_where_a_region_was_compressed_differently() -> None:
    base = np.asarray(
        Image.open(io.BytesIO(encode(camera_photo(8), quality=90))).convert("RGB")
    ).copy()
    base[200:400, 300:600] = camera_photo(9, noise=6.0)[200:400, 300:600]
    ela = error_level(base)
    assert ela[220:380, 320:580].mean() > 1.5 * ela[:150].mean()


def test_the_detector_attaches_heatmaps_a_person_can_look_at() -> None:
    media = media_from_bytes(smoothed_patch(), "s.png")
    findings = PixelsDetector().analyze(media, Context(settings=OPTIONAL_MAPS))
    anomaly = next(f for f in findings if f.code == "pixels.noise_inconsistency")
    assert anomaly.region is not None and anomaly.region.kind == "mask"
    assert {"noise_residual_heatmap", "noise_level_heatmap", "error_level_heatmap"} <= set(
        anomaly.pictures
    )
    picture = anomaly.pictures["noise_residual_heatmap"]
    assert picture.shape == media.analysis.shape and picture.dtype == np.uint8
    truth = np.zeros(anomaly.region.array.shape, bool)
    truth[300:520, 350:650] = True
    assert _f1(anomaly.region.array, truth) > 0.6
    assert "en" in anomaly.reason.as_dict() and anomaly.facts["region_percent"] > 3


def test_pixel_forensics_can_be_switched_off() -> None:
    media = media_from_bytes(smoothed_patch(), "s.png")
    assert PixelsDetector().analyze(media, Context(settings=Settings(pixels_enabled=False))) == []


def test_measurements_of_an_honest_photo_stay_below_every_threshold() -> None:
    settings = Settings()
    m = measure(media_from_bytes(encode(camera_photo(10), quality=88), "h.jpg"), settings)
    assert m.anomaly_score < settings.pixels_anomaly_threshold
    assert m.moire_peak < settings.pixels_moire_threshold
    assert m.copy_move is None


def test_a_region_without_the_demosaicing_pattern_is_outlined_in_a_photo_that_has_one() -> None:
    from refundlens.detectors._pixels_examples import pasted_without_demosaicing

    media = media_from_bytes(pasted_without_demosaicing(), "p.png")
    findings = PixelsDetector().analyze(media, Context(settings=OPTIONAL_MAPS))
    (cfa,) = [f for f in findings if f.code == "pixels.cfa_inconsistency"]
    assert cfa.facts["cfa_strength"] > 1.0 and cfa.facts["cfa_agreement"] > 0.9
    assert "cfa_heatmap" in cfa.pictures
    rows, cols = media.analysis.shape[:2]
    truth = np.zeros((rows, cols), bool)
    truth[rows // 3 : rows // 3 + rows // 4, cols // 3 : cols // 3 + cols // 4] = True
    assert cfa.region is not None
    assert _f1(cfa.region.array, truth) > 0.6


def test_an_untouched_demosaiced_photo_has_the_pattern_everywhere_and_no_cfa_finding() -> None:
    from refundlens.detectors._pixels_examples import demosaiced

    media = media_from_bytes(encode(demosaiced(camera_photo(6, noise=2.0)), "PNG"), "c.png")
    m = measure(media, OPTIONAL_MAPS)
    assert m.cfa_strength > 1.0 and m.cfa_map is not None
    assert m.cfa_score < Settings().pixels_cfa_threshold
    assert not any(
        f.code == "pixels.cfa_inconsistency"
        for f in PixelsDetector().findings(media, m, OPTIONAL_MAPS)
    )


def test_resizing_erases_the_pattern_and_the_cfa_map_then_stays_out_of_the_evidence() -> None:
    from refundlens.detectors._pixels_examples import pasted_without_demosaicing

    pasted = np.asarray(Image.open(io.BytesIO(pasted_without_demosaicing())).convert("RGB"))
    shrunk = np.asarray(Image.fromarray(pasted).resize((700, 525), Image.Resampling.BICUBIC))
    m = measure(media_from_bytes(encode(shrunk, "PNG"), "s.png"), OPTIONAL_MAPS)
    assert m.cfa_strength < Settings().pixels_cfa_min_strength
    assert m.cfa_map is None and m.cfa_score == 0.0


def test_a_patch_moved_by_one_pixel_shows_the_other_lattice() -> None:
    from refundlens.detectors._pixels_examples import demosaiced
    from refundlens.forensics.cfa import cfa_traces

    photo = demosaiced(camera_photo(7, noise=2.0))
    moved = photo.copy()
    moved[256:512, 256:512] = photo[257:513, 256:512]  # an odd shift swaps the green lattices
    traces = cfa_traces(moved, block=32)
    inside = traces.block_map[9:15, 9:15]
    outside = traces.block_map[:6]
    assert np.nanmedian(outside) > 1.0
    assert np.nanmedian(inside) < -1.0


def test_the_painted_patch_net_gives_one_probability_per_eight_pixel_cell() -> None:
    from refundlens.forensics.learned import model_card, painted_patch_map

    heat = painted_patch_map(np.full((100, 83, 3), 128, np.uint8))
    assert heat.shape == (12, 10) and heat.dtype == np.float32
    assert float(heat.min()) >= 0.0 and float(heat.max()) <= 1.0
    assert model_card()["held_out_figures"]["smooth_regrain"]["auc"] > 0.9
    with pytest.raises(ValueError):
        painted_patch_map(np.zeros((6, 40, 3), np.uint8))
    with pytest.raises(ValueError):
        painted_patch_map(np.zeros((40, 40), np.uint8))


def test_the_learned_net_marks_a_regrained_patch_and_not_the_rest_of_the_photo() -> None:
    from refundlens.detectors._pixels_examples import regrained_shop_photo
    from refundlens.forensics.learned import painted_patch_map

    data, mask = regrained_shop_photo()
    forged = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
    heat = painted_patch_map(forged)
    cells = cv2.resize(mask.astype(np.uint8), (heat.shape[1], heat.shape[0])) > 0
    assert heat[cells].mean() > 0.4
    assert heat[~cells].mean() < 0.1


def test_onnx_runtime_and_opencv_give_the_painted_patch_net_the_same_map() -> None:
    """Where ONNX Runtime is installed it runs the net (4x faster); the map must not depend on it."""
    from refundlens.detectors._pixels_examples import regrained_shop_photo
    from refundlens.forensics.learned import painted_patch_map, runtime

    pytest.importorskip("onnxruntime", reason="the ocr extra (ONNX Runtime) is not installed")
    assert runtime() == "onnxruntime"
    data, _mask = regrained_shop_photo()
    forged = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
    fast = painted_patch_map(forged)
    plain = painted_patch_map(forged, use_onnxruntime=False)
    assert fast.shape == plain.shape
    assert float(np.abs(fast - plain).max()) < 1e-4


def test_the_painted_patch_finding_outlines_the_edit_and_carries_its_heatmap() -> None:
    from refundlens.detectors._pixels_examples import regrained_shop_photo

    data, mask = regrained_shop_photo()
    media = media_from_bytes(data, "regrained.png")
    settings = Settings(pixels_painted_threshold=0.5)
    findings = PixelsDetector().analyze(media, Context(settings=settings))
    painted = next(f for f in findings if f.code == "pixels.painted_patch")
    assert painted.region is not None
    assert _f1(painted.region.array, mask) > 0.5
    assert painted.facts["painted_score"] >= 0.5 and painted.facts["threshold_painted"] == 0.5
    assert "painted_patch_heatmap" in painted.pictures
    assert "re-grained" in painted.reason.en and "涂抹" in painted.reason.zh


def test_at_the_shipped_threshold_a_moderate_patch_is_shown_as_a_map_not_reported() -> None:
    # The shipped threshold (0.92) keeps honest smooth surfaces out of the findings; a region
    # scoring about 0.8 is then only a heatmap a person can look at.
    from refundlens.detectors._pixels_examples import regrained_shop_photo

    media = media_from_bytes(regrained_shop_photo()[0], "regrained.png")
    # The generator-trace net also marks this blurred and re-grained patch (tested apart).
    settings = Settings(pixels_generator_enabled=False)
    findings = PixelsDetector().analyze(media, Context(settings=settings))
    assert "pixels.painted_patch" not in {f.code for f in findings}
    none_found = next(f for f in findings if f.code == "pixels.none_found")
    assert 0.5 < none_found.facts["painted_score"] < Settings().pixels_painted_threshold
    assert "painted_patch_heatmap" in none_found.pictures


def test_the_untouched_shop_photo_gets_no_painted_patch_finding() -> None:
    from importlib import resources

    data = (resources.files("refundlens.samples") / "claim_genuine.jpg").read_bytes()
    codes = {f.code for f in PixelsDetector().analyze(media_from_bytes(data, "g.jpg"), Context())}
    assert "pixels.painted_patch" not in codes


def test_the_learned_net_can_be_switched_off() -> None:
    from refundlens.detectors._pixels_examples import regrained_shop_photo

    settings = Settings(pixels_painted_enabled=False)
    media = media_from_bytes(regrained_shop_photo()[0], "regrained.png")
    m = measure(media, settings)
    assert m.painted_map is None and m.painted_score == 0.0
    codes = {f.code for f in PixelsDetector().findings(media, m, settings)}
    assert "pixels.painted_patch" not in codes


@pytest.mark.parametrize("model", ["residual_net.onnx", "generator_traces.onnx"])
def test_each_shipped_net_states_an_ir_version_the_oldest_allowed_onnx_runtime_reads(
    model: str,
) -> None:
    # ONNX Runtime 1.22, the oldest pyproject.toml allows, reads IR 10; a file that says more is
    # refused when the session is made, and every claim's analysis would fail. The IR version is
    # the model's field 1, a varint, first in the file.
    from importlib import resources

    head = (resources.files("refundlens.forensics") / "models" / model).read_bytes()[:2]
    assert head[0] == 0x08 and head[1] <= 10, head
