"""Periodic patterns in the noise residual: a photographed screen, and generator upsampling.

A photo of a screen or a print carries the display's pixel grid or the halftone, folded by the
camera's sampling into moiré: strong isolated peaks in the spectrum of the residual, away from
the axes [1]_. Generators that upsample by 2 (transposed convolutions, VAE decoders) leave peaks
at fractions 1/2, 1/4, 1/8 of the sampling rate [2]_; JPEG's 8x8 grid leaves peaks at those same
fractions, so they are read as upsampling only in files that were never JPEG. Man-made textures
(fabric, barcodes, grilles) also make peaks: these cues are moderate evidence, never proof.

References
----------
.. [1] H. Cao, A. C. Kot, "Identification of recaptured photographs on LCD screens", IEEE ICASSP,
       2010.
.. [2] X. Zhang, S. Karaman, S.-F. Chang, "Detecting and simulating artifacts in GAN fake images",
       IEEE WIFS, 2019.
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np
import numpy.typing as npt
import scipy.fft

__all__ = ["SpectralPeaks", "grid_peaks", "moire_peaks", "spectral_peaks"]


@dataclasses.dataclass(frozen=True, slots=True)
class SpectralPeaks:
    """Peaks of the residual spectrum: height in log-magnitude units above the local median."""

    peak: float
    count: int
    frequencies: tuple[tuple[float, float], ...]
    """(cycles per pixel down, across) of the strongest peaks, at most five."""


@functools.cache
def _window(side: int) -> npt.NDArray[np.float32]:
    window = np.outer(np.hanning(side), np.hanning(side)).astype(np.float32)
    window.flags.writeable = False
    return window


def _spectrum(channel: npt.NDArray[np.float32], size: int) -> npt.NDArray[np.float32]:
    rows, cols = channel.shape
    side = min(size, rows, cols)
    top, left = (rows - side) // 2, (cols - side) // 2
    crop = channel[top : top + side, left : left + side].astype(np.float32)
    residual = crop - cv2.GaussianBlur(crop, (0, 0), 3.0)
    # Single precision throughout: peaks are read to 0.1 log units, far above float32 rounding,
    # and the transform runs about twice as fast as NumPy's double-precision one. The residual
    # is real, so its spectrum is conjugate-symmetric: the real transform computes half of it
    # and the other half is that half mirrored through the origin (3x faster than the complex
    # transform with NumPy's log, bench/results/service.md).
    half = np.abs(scipy.fft.rfft2(residual * _window(side)))
    columns = half.shape[1]
    spectrum = np.empty((side, side), np.float32)
    spectrum[:, :columns] = half
    spectrum[:, columns:] = half[_mirrored_rows(side)][:, side - np.arange(columns, side)]
    spectrum = scipy.fft.fftshift(spectrum)
    return cv2.log(spectrum + 1.0)


@functools.cache
def _mirrored_rows(side: int) -> npt.NDArray[np.intp]:
    """Row ``r`` of a 2-D DFT mirrored through the origin: ``-r`` modulo ``side``."""
    rows = (-np.arange(side)) % side
    rows.flags.writeable = False
    return rows


def _peaks(
    log_spectrum: npt.NDArray[np.float32], keep: npt.NDArray[np.bool_], threshold: float
) -> SpectralPeaks:
    # Peak height over a grey-level opening (9x9, then smoothed): the opening removes anything
    # narrower than the kernel, so the smooth fall-off of natural images cancels and the isolated
    # lines of a regular pattern stand out.
    opened = cv2.morphologyEx(
        log_spectrum.astype(np.float32), cv2.MORPH_OPEN, np.ones((9, 9), np.uint8)
    )
    background = cv2.GaussianBlur(opened, (0, 0), 2.0)
    excess = np.where(keep, log_spectrum - background, 0.0)
    local_max = excess >= cv2.dilate(excess.astype(np.float32), np.ones((5, 5), np.uint8))
    candidates = np.argwhere(local_max & (excess > threshold))
    side = log_spectrum.shape[0]
    heights = excess[candidates[:, 0], candidates[:, 1]]
    # The five highest, highest first; ties keep the scan order (a stable sort).
    order = np.argsort(-heights, kind="stable")[:5]
    frequencies = tuple(
        (round((int(r) - side // 2) / side, 4), round((int(c) - side // 2) / side, 4))
        for r, c in candidates[order]
    )
    # Symmetric spectrum: each peak appears twice.
    return SpectralPeaks(float(excess.max()), len(candidates) // 2, frequencies)


def _frequency_grid(side: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    f = (np.arange(side) - side // 2) / side
    return np.meshgrid(f, f, indexing="ij")


@functools.cache
def _moire_band(side: int) -> npt.NDArray[np.bool_]:
    """Where a screen's moiré may peak: off the axes, off the JPEG grid, above 0.02 cycles/px."""
    fy, fx = _frequency_grid(side)
    grid = (np.abs(fy * 8 - np.rint(fy * 8)) < 2.5 / side * 8) | (
        np.abs(fx * 8 - np.rint(fx * 8)) < 2.5 / side * 8
    )
    axes = (np.abs(fy) < 3 / side) | (np.abs(fx) < 3 / side)
    band = (np.hypot(fy, fx) > 0.02) & ~axes & ~grid
    band.flags.writeable = False
    return band


@functools.cache
def _grid_band(side: int) -> npt.NDArray[np.bool_]:
    """The frequencies k/8 cycles per pixel in both directions, away from the centre."""
    fy, fx = _frequency_grid(side)
    on_grid_y = np.abs(fy * 8 - np.rint(fy * 8)) < 1.5 / side * 8
    on_grid_x = np.abs(fx * 8 - np.rint(fx * 8)) < 1.5 / side * 8
    band = on_grid_y & on_grid_x & (np.hypot(fy, fx) > 0.1)
    band.flags.writeable = False
    return band


def _ycc_spectra(rgb: npt.ArrayLike, size: int) -> tuple[npt.NDArray[np.float32], ...]:
    """Log spectra of the Y, Cr and Cb residuals of the centred square of at most ``size`` px."""
    arr = np.asarray(rgb, dtype=np.uint8)
    ycc = cv2.cvtColor(arr, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    return tuple(_spectrum(ycc[:, :, channel], size) for channel in range(3))


def _moire(spectra: tuple[npt.NDArray[np.float32], ...], threshold: float) -> SpectralPeaks:
    keep = _moire_band(spectra[0].shape[0])
    found = [_peaks(spectrum, keep, threshold) for spectrum in spectra]
    return max(found, key=lambda f: f.peak)


def moire_peaks(rgb: npt.ArrayLike, *, size: int = 1024, threshold: float = 2.0) -> SpectralPeaks:
    """Isolated peaks off the axes and off the JPEG grid in the luma and chroma residuals.

    Parameters
    ----------
    rgb : RGB uint8 at full resolution (a screen's grid does not survive downscaling).
    size : side of the centred square analysed, in pixels.
    threshold : log-magnitude excess over the neighbourhood median that counts as a peak.
    """
    arr = np.asarray(rgb, dtype=np.uint8)
    if min(size, arr.shape[0], arr.shape[1]) < 128:
        return SpectralPeaks(0.0, 0, ())
    return _moire(_ycc_spectra(arr, size), threshold)


def grid_peaks(rgb: npt.ArrayLike, *, size: int = 1024, threshold: float = 2.0) -> SpectralPeaks:
    """Peaks exactly at 1/8, 1/4, 3/8 or 1/2 cycles per pixel: upsampling (in non-JPEG files)."""
    arr = np.asarray(rgb, dtype=np.uint8)
    luma = cv2.cvtColor(arr, cv2.COLOR_RGB2YCrCb)[:, :, 0].astype(np.float32)
    side = min(size, luma.shape[0], luma.shape[1])
    if side < 64:
        return SpectralPeaks(0.0, 0, ())
    return _peaks(_spectrum(luma, size), _grid_band(side), threshold)


def spectral_peaks(
    rgb: npt.ArrayLike, *, size: int = 1024, threshold: float = 2.0
) -> tuple[SpectralPeaks, SpectralPeaks]:
    """``(moire_peaks, grid_peaks)`` of one image, its three spectra computed once.

    The grid is read from the luma spectrum that the moiré search has already computed: the
    same answers as the two functions called apart, a quarter fewer transforms.
    """
    arr = np.asarray(rgb, dtype=np.uint8)
    side = min(size, arr.shape[0], arr.shape[1])
    if side < 64:
        return SpectralPeaks(0.0, 0, ()), SpectralPeaks(0.0, 0, ())
    spectra = _ycc_spectra(arr, size)
    grid = _peaks(spectra[0], _grid_band(side), threshold)
    moire = _moire(spectra, threshold) if side >= 128 else SpectralPeaks(0.0, 0, ())
    return moire, grid
