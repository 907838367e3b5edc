"""refundlens: screens after-sales claim photos for forged evidence."""

__version__ = "0.1.0"
