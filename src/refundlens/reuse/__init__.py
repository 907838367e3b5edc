"""reuse: the same photo across claims, a shared bank of confirmed abuse, and buyer history.

``index`` finds PDQ hashes within a Hamming radius among millions (FAISS multi-index hashing);
``bank`` exports and imports signed files of confirmed forgeries (no images, no personal data);
``ledger`` sums a buyer's history. ``detectors/reuse`` turns their answers into findings.
"""
