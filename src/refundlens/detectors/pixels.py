"""detectors/pixels: evidence in the pixels alone, for photos with no reference and no label.

Six local maps (double JPEG quantization, demosaicing pattern, residual co-occurrence, a small
learned net that marks painted patches, local noise level, error level), a learned detector of
pixels decoded by a generator (a map and an image score), and three global cues (copy-move, a
photographed screen, generator upsampling or no sensor noise at all). :func:`measure` computes everything once; :class:`PixelsDetector` turns the measurements into
findings. Every cue here has honest photos that resemble it (chat apps recompress, products repeat,
textiles are periodic), so the policy caps the family at ``review``: a person looks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import cv2
import numpy as np
import numpy.typing as npt

from ..config import Settings
from ..forensics.cfa import cfa_traces
from ..forensics.copy_move import CopyMove, find_copy_move
from ..forensics.ela import error_level
from ..forensics.generator_traces import CELL as GENERATOR_CELL
from ..forensics.generator_traces import generator_traces
from ..forensics.learned import CELL, painted_patch_map
from ..forensics.noise import noise_level_and_map, residual_cooccurrence_map
from ..forensics.spectrum import spectral_peaks
from ..media import Media
from .base import Context, Detector, Example, Finding, Reason, Region
from .measured import jpeg_double_quantization

__all__ = ["PixelMeasurements", "PixelsDetector", "heat_pictures", "measure"]

FloatMap = npt.NDArray[np.float32]

# A region smaller than this share of the image is noise in the map; larger than the maximum, the
# "anomaly" is the image's own content split in two (sky against ground), not an edit.
MIN_REGION_SHARE = 0.003
MAX_REGION_SHARE = 0.5
# Mahalanobis separation of the residual map's two classes at which its score is one half.
RESIDUAL_SEPARATION = 18.0


@dataclasses.dataclass(frozen=True, eq=False)
class PixelMeasurements:
    """Everything pixel forensics measured on one image, maps at the analysis resolution."""

    dq_map: FloatMap | None
    dq_strength: float
    dq_periods: dict[int, int]
    dq_region: npt.NDArray[np.bool_] | None
    dq_score: float
    cooc_map: FloatMap | None
    """The noise-residual map (``pixels_residual_enabled``; None where it did not run)."""
    cooc_separation: float
    cooc_region: npt.NDArray[np.bool_] | None
    cooc_score: float
    cfa_map: FloatMap | None
    cfa_strength: float
    cfa_agreement: float
    cfa_region: npt.NDArray[np.bool_] | None
    cfa_score: float
    painted_map: FloatMap | None
    painted_region: npt.NDArray[np.bool_] | None
    painted_score: float
    generator_map: FloatMap | None
    """Probability per 16x16 cell that a generator decoded it, at the analysis resolution."""
    generator_score: float
    """The generator-trace net's image score in [0, 1] (0 where it did not run)."""
    noise_map: FloatMap
    noise_level: float
    noise_spread: float
    ela_map: FloatMap
    copy_move: CopyMove | None
    moire_peak: float
    moire_frequencies: tuple[tuple[float, float], ...]
    grid_peak: float
    grid_count: int

    def _strongest(self) -> str:
        scores = {
            "double_jpeg": self.dq_score,
            "painted": self.painted_score,
            "cfa": self.cfa_score,
            "noise_residual": 0.0,
        }
        best = max(scores, key=lambda k: scores[k])
        return best if scores[best] >= self.cooc_score and scores[best] > 0 else "noise_residual"

    @property
    def anomaly_score(self) -> float:
        """The fused local-anomaly score in [0, 1]: the strongest of the localising maps."""
        return max(self.dq_score, self.painted_score, self.cfa_score, self.cooc_score)

    @property
    def anomaly_region(self) -> npt.NDArray[np.bool_] | None:
        kind = self._strongest()
        if kind == "double_jpeg" and self.dq_region is not None:
            return self.dq_region
        if kind == "painted" and self.painted_region is not None:
            return self.painted_region
        if kind == "cfa" and self.cfa_region is not None:
            return self.cfa_region
        return self.cooc_region

    @property
    def anomaly_map(self) -> FloatMap:
        kind = self._strongest()
        if kind == "double_jpeg" and self.dq_map is not None:
            return self.dq_map
        if kind == "painted" and self.painted_map is not None:
            return self.painted_map
        if kind == "cfa" and self.cfa_map is not None:
            return self.cfa_map
        if self.cooc_map is not None:
            return self.cooc_map
        # The residual map did not run: the strongest map that did (all zero where none ran).
        ran = [
            (score, heat)
            for score, heat in (
                (self.painted_score, self.painted_map),
                (self.dq_score, self.dq_map),
                (self.cfa_score, self.cfa_map),
            )
            if heat is not None
        ]
        if ran:
            return max(ran, key=lambda pair: pair[0])[1]
        return np.zeros(self.noise_map.shape, np.float32)


def _largest_region(
    heat: FloatMap, level: float
) -> tuple[npt.NDArray[np.bool_] | None, float, float]:
    """The largest connected area of ``heat >= level``: (mask, share of image, mean heat in it)."""
    binary = (heat >= level).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return None, 0.0, 0.0
    index = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = labels == index
    share = float(mask.mean())
    return mask, share, float(heat[mask].mean())


def _region_score(heat: FloatMap, level: float) -> tuple[npt.NDArray[np.bool_] | None, float]:
    mask, share, mean = _largest_region(heat, level)
    if mask is None or not MIN_REGION_SHARE <= share <= MAX_REGION_SHARE:
        return None, 0.0
    outside = heat[~mask]
    contrast = mean - (float(np.median(outside)) if outside.size else 0.0)
    return mask, float(np.clip(contrast, 0.0, 1.0))


def _to_analysis(array: npt.NDArray[Any], shape: tuple[int, int]) -> FloatMap:
    return cv2.resize(
        array.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR
    )


def _working_copy(claim: Media, side: int) -> npt.NDArray[np.uint8]:
    if max(claim.width, claim.height) <= max(claim.analysis.shape[:2]) or side <= max(
        claim.analysis.shape[:2]
    ):
        return claim.analysis
    full = claim.pixels
    factor = side / max(full.shape[:2])
    if factor >= 1:
        return full
    size = (max(1, round(full.shape[1] * factor)), max(1, round(full.shape[0] * factor)))
    return cv2.resize(full, size, interpolation=cv2.INTER_AREA)


def measure(claim: Media, settings: Settings | None = None) -> PixelMeasurements:
    """Run every pixel-forensics map and cue on ``claim`` once."""
    settings = settings or Settings()
    shape = claim.analysis.shape[:2]

    dq_map: FloatMap | None = None
    dq_region, dq_score, dq_strength, dq_periods = None, 0.0, 0.0, {}
    dq = jpeg_double_quantization(claim)
    if dq is not None:
        dq_strength, dq_periods = dq.strength, dq.periods
        if dq.block_map is not None and len(dq.periods) >= 2:
            # Smooth over 3x3 blocks: single blocks flip on texture, edits span many blocks.
            blocks = cv2.blur(dq.block_map, (3, 3))
            dq_map = np.clip(_to_analysis(claim.orient(blocks), shape), 0, 1)
            dq_region, dq_score = _region_score(dq_map, 0.7)

    cfa_map, cfa_region, cfa_score, cfa_strength, cfa_agreement = (
        _cfa(claim, settings) if settings.pixels_cfa_enabled else (None, None, 0.0, 0.0, 0.0)
    )

    work = _working_copy(claim, settings.pixels_side)
    cooc_map: FloatMap | None = None
    cooc_region, cooc_score, separation = None, 0.0, 0.0
    if settings.pixels_residual_enabled:
        cooc, separation = residual_cooccurrence_map(work)
        cooc_map = _to_analysis(cooc, shape)
        cooc_region, cooc_contrast = _region_score(cooc_map, 0.5)
        # Separation (Mahalanobis units) says whether the two classes differ at all; contrast
        # says whether the map singles out one place. Authentic photos reach a separation of 17
        # through content alone (dev split, bench/results/forensics.md), so the score rises
        # only beyond that.
        cooc_score = cooc_contrast * float(
            1.0 / (1.0 + np.exp(-(separation - RESIDUAL_SEPARATION)))
        )

    painted_map, painted_region, painted_score = None, None, 0.0
    if settings.pixels_painted_enabled and min(work.shape[:2]) >= 4 * CELL:
        painted_map = _painted_heat(work, shape)
        painted_region, painted_score = _region_score(painted_map, 0.5)

    generator_map, generator_score = None, 0.0
    if settings.pixels_generator_enabled and min(work.shape[:2]) >= 2 * GENERATOR_CELL:
        traces = generator_traces(work)
        generator_score = traces.score
        generator_map = _cells_to_analysis(
            traces.cells, GENERATOR_CELL, (work.shape[0], work.shape[1]), shape
        )

    level, tiles = noise_level_and_map(work, 32)
    finite = tiles[np.isfinite(tiles)]
    spread = 0.0
    if finite.size >= 8:
        logs = np.log(np.maximum(finite, 0.05))
        spread = float(np.percentile(logs, 95) - np.percentile(logs, 5))
        median = float(np.median(finite))
        filled = np.where(np.isfinite(tiles), tiles, median)
        deviation = np.abs(np.log(np.maximum(filled, 0.05) / max(median, 0.05)))
        noise_map = np.clip(_to_analysis(deviation, shape) / np.log(4.0), 0, 1)
    else:
        noise_map = np.zeros(shape, np.float32)

    ela = error_level(claim.analysis)
    ela_map = np.clip(ela / max(float(np.percentile(ela, 99.5)), 1.0), 0, 1).astype(np.float32)

    moire, grid = spectral_peaks(
        _centre(claim, settings.pixels_moire_side), size=settings.pixels_moire_side
    )

    return PixelMeasurements(
        dq_map=dq_map,
        dq_strength=dq_strength,
        dq_periods=dq_periods,
        dq_region=dq_region,
        dq_score=dq_score,
        cooc_map=cooc_map,
        cooc_separation=separation,
        cooc_region=cooc_region,
        cooc_score=cooc_score,
        cfa_map=cfa_map,
        cfa_strength=cfa_strength,
        cfa_agreement=cfa_agreement,
        cfa_region=cfa_region,
        cfa_score=cfa_score,
        painted_map=painted_map,
        painted_region=painted_region,
        painted_score=painted_score,
        generator_map=generator_map,
        generator_score=generator_score,
        noise_map=noise_map.astype(np.float32),
        noise_level=level,
        noise_spread=spread,
        ela_map=ela_map,
        copy_move=find_copy_move(
            claim.analysis,
            min_inliers=settings.pixels_copy_move_min_inliers,
            max_side=settings.pixels_copy_move_side,
        )
        if settings.pixels_copy_move_enabled
        else None,
        moire_peak=moire.peak,
        moire_frequencies=moire.frequencies,
        grid_peak=grid.peak,
        grid_count=grid.count,
    )


def _painted_heat(work: npt.NDArray[np.uint8], shape: tuple[int, int]) -> FloatMap:
    """The learned net's per-cell probability, spread over ``work`` and resized to ``shape``."""
    return _cells_to_analysis(painted_patch_map(work), CELL, (work.shape[0], work.shape[1]), shape)


def _cells_to_analysis(
    cells: FloatMap, cell: int, work: tuple[int, int], shape: tuple[int, int]
) -> FloatMap:
    """Per-cell values of a net that saw a ``work``-sized image, spread over it and resized to
    the analysis ``shape``."""
    rows, cols = cells.shape[0] * cell, cells.shape[1] * cell
    heat = cv2.resize(cells, (cols, rows), interpolation=cv2.INTER_LINEAR)
    # The net drops the last partial cell row and column; repeat the edge to cover them.
    heat = cv2.copyMakeBorder(heat, 0, work[0] - rows, 0, work[1] - cols, cv2.BORDER_REPLICATE)
    return np.clip(_to_analysis(heat, shape), 0, 1)


def _native(claim: Media) -> npt.NDArray[np.uint8]:
    """The pixels as the file holds them (the analysis copy is resampled for large photos)."""
    if max(claim.width, claim.height) <= max(claim.analysis.shape[:2]):
        return claim.analysis
    return claim.pixels


def _cfa(
    claim: Media, settings: Settings
) -> tuple[FloatMap | None, npt.NDArray[np.bool_] | None, float, float, float]:
    """(map, region, score, strength, agreement) of the demosaicing pattern.

    The map is "pattern missing" in [0, 1] per block, at the analysis resolution: 1 where a
    textured block shows no pattern or the other lattice's. It exists only when the photo as a
    whole carries a clear pattern (``pixels_cfa_min_strength``): a resized or compressed photo
    has none anywhere, and its blocks then say nothing about an edit.
    """
    traces = cfa_traces(_native(claim), block=settings.pixels_cfa_block)
    if traces.strength < max(
        settings.pixels_cfa_min_strength, settings.pixels_cfa_min_separation * traces.spread
    ):
        return None, None, 0.0, traces.strength, traces.agreement
    values = traces.block_map
    missing = np.where(
        np.isfinite(values), np.clip(1.0 - values / traces.strength, 0.0, 1.0), 0.0
    ).astype(np.float32)
    missing = cv2.blur(missing, (3, 3))  # an edit spans blocks; one block flips on texture
    rows, cols = claim.analysis.shape[:2]
    factor = rows / _native(claim).shape[0]
    covered = (
        max(1, round(values.shape[1] * traces.block * factor)),
        max(1, round(values.shape[0] * traces.block * factor)),
    )
    heat = np.zeros((rows, cols), np.float32)
    part = cv2.resize(missing, covered, interpolation=cv2.INTER_LINEAR)
    heat[: min(rows, part.shape[0]), : min(cols, part.shape[1])] = part[:rows, :cols]
    region, score = _region_score(heat, 0.5)
    return heat, region, score, traces.strength, traces.agreement


def _centre(claim: Media, side: int) -> npt.NDArray[np.uint8]:
    """The centred square of at most ``side`` pixels at full resolution (moire needs every pixel)."""
    full = _native(claim)
    rows, cols = full.shape[:2]
    s = min(side, rows, cols)
    top, left = (rows - s) // 2, (cols - s) // 2
    return full[top : top + s, left : left + s]


def heat_pictures(
    heats: dict[str, FloatMap], image: npt.NDArray[np.uint8], alpha: float = 0.55
) -> dict[str, npt.NDArray[np.uint8]]:
    """Each heatmap blended over one dimmed grey copy of ``image`` (RGB uint8, same rows and
    cols), by name. The grey copy is made once for all of them: a claim shows up to seven maps.
    """
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    out = {}
    for name, heat in heats.items():
        colours = cv2.applyColorMap(
            np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO
        )
        colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB)
        out[name] = cv2.addWeighted(grey, (1 - alpha) * 0.8, colours, alpha, 0.0)
    return out


class PixelsDetector(Detector):
    """Training-free local forensics: noise, double JPEG, copy-move, recapture, generator cues."""

    name = "pixels"
    codes: ClassVar[dict[str, str]] = {
        "pixels.double_jpeg_inconsistency": "One region was not compressed twice like the rest of the JPEG.",
        "pixels.noise_inconsistency": "One region's noise residual differs from the rest of the photo.",
        "pixels.painted_patch": "One region looks painted, inpainted or re-grained to the learned patch detector.",
        "pixels.generator_traces": "The learned generator-trace net finds pixels decoded by an image generator, in the whole picture or a region.",
        "pixels.cfa_inconsistency": "One region lacks the camera's demosaicing pattern that the rest carries.",
        "pixels.copy_move": "A region of the photo is cloned elsewhere in the same photo.",
        "pixels.recapture": "The photo shows a screen's moire: a picture of a screen, not of the goods.",
        "pixels.upsampling_peaks": "Periodic peaks of generator upsampling in a file that was never JPEG.",
        "pixels.no_sensor_noise": "The image has almost no sensor noise, unlike a camera photo.",
        "pixels.none_found": "Pixel forensics found nothing it would report; the maps are attached.",
    }

    def analyze(self, claim: Media, context: Context) -> list[Finding]:
        if not context.settings.pixels_enabled:
            return []
        return self.findings(claim, measure(claim, context.settings), context.settings)

    def findings(self, claim: Media, m: PixelMeasurements, settings: Settings) -> list[Finding]:
        """Findings from measurements already taken (the benchmark measures once, reports twice)."""
        findings: list[Finding] = []
        image = claim.analysis
        heats = {
            "noise_level_heatmap": m.noise_map,
            "error_level_heatmap": m.ela_map,
            "noise_residual_heatmap": m.cooc_map,
            "double_jpeg_heatmap": m.dq_map,
            "cfa_heatmap": m.cfa_map,
            "painted_patch_heatmap": m.painted_map,
            "generator_traces_heatmap": m.generator_map,
        }
        maps = heat_pictures({k: v for k, v in heats.items() if v is not None}, image)
        common = {
            "anomaly_score": round(m.anomaly_score, 3),
            "double_jpeg_strength": round(m.dq_strength, 3),
            "double_jpeg_periods": {str(k): v for k, v in m.dq_periods.items()},
            "double_jpeg_score": round(m.dq_score, 3),
            "painted_score": round(m.painted_score, 3),
            "generator_score": round(m.generator_score, 3),
            "noise_level": round(m.noise_level, 2),
            "noise_spread_log": round(m.noise_spread, 2),
            "threshold_double_jpeg": settings.pixels_double_jpeg_threshold,
            "threshold_painted": settings.pixels_painted_threshold,
            "threshold_generator": settings.pixels_generator_threshold,
            # What did not run is not a measurement of zero: its numbers are left out.
            **(
                {
                    "cfa_strength": round(m.cfa_strength, 3),
                    "cfa_agreement": round(m.cfa_agreement, 3),
                    "cfa_score": round(m.cfa_score, 3),
                    "threshold_cfa": settings.pixels_cfa_threshold,
                }
                if settings.pixels_cfa_enabled
                else {}
            ),
            **(
                {
                    "residual_separation": round(m.cooc_separation, 2),
                    "residual_score": round(m.cooc_score, 3),
                    "threshold_noise_residual": settings.pixels_anomaly_threshold,
                }
                if m.cooc_map is not None
                else {}
            ),
            "maps_not_run": [
                name
                for name, ran in (
                    ("noise_residual", m.cooc_map is not None),
                    ("copy_move", settings.pixels_copy_move_enabled),
                    ("cfa", settings.pixels_cfa_enabled),
                    ("generator_traces", m.generator_map is not None),
                )
                if not ran
            ],
        }
        # Both localising maps may fire on one edit; they are not independent evidence, so only one
        # becomes a finding (double JPEG first: it never fired on an authentic photo) and the
        # other's score stays in its facts.
        passing = [
            (kind, score, region)
            for kind, score, region, level in (
                ("double_jpeg", m.dq_score, m.dq_region, settings.pixels_double_jpeg_threshold),
                ("painted", m.painted_score, m.painted_region, settings.pixels_painted_threshold),
                ("cfa", m.cfa_score, m.cfa_region, settings.pixels_cfa_threshold),
                ("noise_residual", m.cooc_score, m.cooc_region, settings.pixels_anomaly_threshold),
            )
            if region is not None and score >= level
        ]
        for kind, score, region in passing[:1]:
            assert region is not None
            share = round(100 * float(region.mean()), 2)
            if kind == "double_jpeg":
                code = "pixels.double_jpeg_inconsistency"
                reason = Reason(
                    en=f"The JPEG was compressed twice, except one region ({share}% of the image) that was "
                    "compressed only once: a sign it was pasted or painted in before the last save.",
                    zh=f"该 JPEG 整体经过两次压缩，唯独一块区域（占画面 {share}%）只压缩过一次："
                    "说明它可能是在最后一次保存前被粘贴或绘制上去的。",
                )
            elif kind == "painted":
                code = "pixels.painted_patch"
                reason = Reason(
                    en=f"One region ({share}% of the image) looks painted, inpainted or smoothed and "
                    "re-grained to a small net trained on such edits (painted-patch score "
                    f"{m.painted_score:.2f}). It was not trained on pasted photos, and a very "
                    "smooth or out-of-focus surface can look alike: a person should look.",
                    zh=f"一块区域（占画面 {share}%）在专门识别此类修改的小型模型看来像是被涂抹、"
                    f"AI 修补或磨皮后重新加噪（涂抹区域得分 {m.painted_score:.2f}）。该模型未学习"
                    "拼接照片；非常光滑或失焦的表面也可能相似，需人工查看。",
                )
            elif kind == "cfa":
                code = "pixels.cfa_inconsistency"
                reason = Reason(
                    en=f"The photo carries the pattern a camera's colour filter leaves (strength "
                    f"{m.cfa_strength:.2f}), except one region ({share}% of the image) that lacks it: "
                    "pasted from a resized or shifted photo, painted or generated. Very smooth or "
                    "saturated areas can lose the pattern too: a person should look.",
                    zh=f"照片整体带有相机色彩滤镜阵列留下的规律纹理（强度 {m.cfa_strength:.2f}），"
                    f"唯独一块区域（占画面 {share}%）没有：可能是从缩放或平移过的照片粘贴、涂抹或 AI 生成的。"
                    "非常平滑或饱和的区域也可能失去这种纹理，需人工查看。",
                )
            else:
                code = "pixels.noise_inconsistency"
                reason = Reason(
                    en=f"One region ({share}% of the image) has other noise statistics than the rest of "
                    "the photo, as a pasted, painted or inpainted area has. Smooth or strongly "
                    "textured surfaces can also stand out: a person should look.",
                    zh=f"一块区域（占画面 {share}%）的噪声统计与照片其余部分不同，粘贴、涂抹或"
                    "AI 修补的区域常有此特征。光滑或纹理强烈的表面也可能如此，需人工查看。",
                )
            findings.append(
                Finding(
                    code=code,
                    # Measured: the residual map barely separates forged from authentic photos at
                    # image level (bench/results/forensics.md), so it weighs little; the
                    # double-JPEG region is calibrated from the benchmark instead.
                    # CFA: weighted as the residual map until the benchmark holds photos that
                    # keep the pattern (none of its JPEGs or phone photos do). Painted patch:
                    # provisional +2, replaced by its calibrated strength (policy/calibration.yaml).
                    strength={"double_jpeg": 3.0, "painted": 2.0}.get(kind, 1.0) * score,
                    confidence=score,
                    reason=reason,
                    facts={
                        **common,
                        "region_percent": share,
                        "map": kind,
                    },
                    region=Region(region, "mask"),
                    detector=self.name,
                    pictures=maps,
                )
            )
        if m.generator_map is not None and m.generator_score >= settings.pixels_generator_threshold:
            findings.append(self._generator_finding(m, settings, maps))
        if m.copy_move is not None:
            cm = m.copy_move
            findings.append(
                Finding(
                    code="pixels.copy_move",
                    strength=2.0,
                    confidence=min(1.0, cm.inliers / 40),
                    reason=Reason(
                        en=f"{cm.inliers} keypoints of one region reappear {cm.shift_px:.0f} px away in the same "
                        "photo: a region may be cloned. Identical objects side by side look the same way.",
                        zh=f"同一张照片中有 {cm.inliers} 个特征点在 {cm.shift_px:.0f} 像素外重复出现："
                        "可能有区域被复制粘贴。并排摆放的相同物品也会如此。",
                    ),
                    facts={
                        "inliers": cm.inliers,
                        "pairs": cm.pairs,
                        "shift_px": round(cm.shift_px, 1),
                        "scale": round(cm.scale, 3),
                        "rotation_deg": round(cm.rotation_deg, 1),
                        "source_box_row_col_height_width": list(cm.source_box),
                        "copy_box_row_col_height_width": list(cm.copy_box),
                        "min_inliers": settings.pixels_copy_move_min_inliers,
                    },
                    region=Region(cm.mask, "mask"),
                    detector=self.name,
                )
            )
        if m.moire_peak >= settings.pixels_moire_threshold:
            findings.append(
                Finding(
                    code="pixels.recapture",
                    strength=2.5,
                    confidence=float(
                        np.clip((m.moire_peak - settings.pixels_moire_threshold) / 2 + 0.5, 0, 1)
                    ),
                    reason=Reason(
                        en="The photo carries the regular moire of a screen or print: it looks like a picture "
                        "of a screen (for example the listing photo), not of the goods. Fabric and "
                        "fine patterns can look alike.",
                        zh="照片带有屏幕或印刷品特有的规则摩尔纹：看起来是翻拍的屏幕（例如商品主图），"
                        "而不是实物照片。织物和细密图案也可能产生类似纹理。",
                    ),
                    facts={
                        "spectral_peak": round(m.moire_peak, 2),
                        "peak_cycles_per_pixel": [list(f) for f in m.moire_frequencies],
                        "threshold": settings.pixels_moire_threshold,
                    },
                    detector=self.name,
                )
            )
        if (
            claim.format != "JPEG"
            and m.grid_peak >= settings.pixels_moire_threshold
            and m.grid_count >= 2
        ):
            findings.append(
                Finding(
                    code="pixels.upsampling_peaks",
                    strength=1.0,
                    confidence=0.4,
                    reason=Reason(
                        en="Periodic peaks at fractions of the pixel grid, as generator upsampling leaves, in a "
                        "file that was never JPEG. A weak cue on its own.",
                        zh="在从未经过 JPEG 压缩的文件中发现位于像素网格分数频率处的周期峰，"
                        "这是生成模型上采样的痕迹。单独来看是弱证据。",
                    ),
                    facts={
                        "spectral_peak": round(m.grid_peak, 2),
                        "peaks": m.grid_count,
                        "format": claim.format,
                    },
                    detector=self.name,
                )
            )
        # JPEG compression alone flattens noise in honest photos (16 of 98 camera originals in the
        # benchmark): only lossless or WebP files are judged on it.
        if (
            claim.format in ("PNG", "WEBP")
            and m.noise_level < 0.35
            and claim.width * claim.height >= 250_000
        ):
            findings.append(
                Finding(
                    code="pixels.no_sensor_noise",
                    strength=0.7,
                    confidence=0.3,
                    reason=Reason(
                        en=f"The flat areas carry almost no noise ({m.noise_level:.2f} grey levels), unlike a camera "
                        "photo: a render, a generated image, or heavy smoothing. Screenshots of graphics "
                        "look the same; a weak cue.",
                        zh=f"画面平坦区域几乎没有噪声（{m.noise_level:.2f} 灰度级），不像相机拍摄的照片："
                        "可能是渲染图、AI 生成图或经过强烈磨皮。图形截图也会如此，属于弱证据。",
                    ),
                    facts={"noise_level": round(m.noise_level, 2)},
                    detector=self.name,
                )
            )
        if not any(
            f.code
            in (
                "pixels.double_jpeg_inconsistency",
                "pixels.painted_patch",
                "pixels.cfa_inconsistency",
                "pixels.noise_inconsistency",
                "pixels.generator_traces",
            )
            for f in findings
        ):
            findings.append(
                Finding(
                    code="pixels.none_found",
                    strength=0.0,
                    confidence=1.0 - m.anomaly_score,
                    reason=Reason(
                        en="Pixel forensics found no local inconsistency strong enough to report. Careful edits "
                        "and heavy recompression hide their traces: this does not prove the photo genuine.",
                        zh="像素取证未发现足以报告的局部不一致。精细的修改和多次压缩会掩盖痕迹："
                        "这并不能证明照片是真实的。",
                    ),
                    facts=common,
                    detector=self.name,
                    pictures=maps,
                )
            )
        return findings

    def _generator_finding(
        self, m: PixelMeasurements, settings: Settings, maps: dict[str, npt.NDArray[np.uint8]]
    ) -> Finding:
        assert m.generator_map is not None
        share = round(100 * float((m.generator_map >= 0.5).mean()), 1)
        score = m.generator_score
        if share >= 60:
            en_where, zh_where = "most of the picture", "画面大部分区域"
        else:
            en_where, zh_where = f"a part of the picture ({share}%)", f"画面的一部分（占 {share}%）"
        return Finding(
            code="pixels.generator_traces",
            # Provisional; the calibrated strength (policy/calibration.yaml) replaces it.
            strength=2.0 * score,
            confidence=score,
            reason=Reason(
                en=f"A small net trained to tell camera pixels from pixels decoded by an image "
                f"generator finds generator traces in {en_where} (score {score:.2f}): it may be "
                "AI-generated or AI-edited. Heavy filters and upscaling apps can look alike: a "
                "person should look.",
                zh=f"一个专门区分相机像素与图像生成模型解码像素的小型模型在{zh_where}发现生成痕迹"
                f"（得分 {score:.2f}）：图片可能由 AI 生成或经 AI 修改。强滤镜和放大类应用也可能"
                "造成类似痕迹，需人工查看。",
            ),
            facts={
                "generator_score": round(score, 3),
                "cells_percent": share,
                "threshold": settings.pixels_generator_threshold,
                "model": "forensics/models/generator_traces.onnx",
            },
            region=Region(m.generator_map, "heatmap"),
            detector=self.name,
            pictures={"generator_traces_heatmap": maps["generator_traces_heatmap"]},
        )

    @classmethod
    def examples(cls) -> Sequence[Example]:
        from ._pixels_examples import pixel_examples

        return pixel_examples()
