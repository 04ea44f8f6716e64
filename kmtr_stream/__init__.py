"""k-MTR Stream: streaming cardiac MRI analysis straight from undersampled k-space."""

__version__ = "0.1.0"
