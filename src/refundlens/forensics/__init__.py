"""Pixel forensics as functions over arrays: maps and scores that detectors/pixels turns into findings.

Every function takes NumPy arrays (RGB uint8 or luma float32, (row, col) order) and returns maps
aligned with its input or with its 8x8 block grid; none of them opens a file.
"""
