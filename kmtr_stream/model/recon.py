"""Zero-filled reconstruction for the recon-then-analyze baseline (image path only).

This is the conventional pipeline the k-MTR model is compared against; the
k-space path of k-MTR never calls it.
"""

from __future__ import annotations

import torch


def zero_filled_rss(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero-filled centred inverse FFT per coil and root-sum-of-squares combination.

    Args:
        kspace: ``(n, coils, ky, kx)`` complex k-space with DC at the array centre.
        mask: ``(n, ky)`` bool, True where a line was acquired.

    Returns:
        ``(n, ny, nx)`` float32 magnitude images, density-compensated by the
        sampled fraction so that the image scale does not depend on acceleration.
    """
    m = mask.to(kspace.real.dtype)
    k = kspace * m[:, None, :, None]
    img = torch.fft.fftshift(
        torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho"),
        dim=(-2, -1),
    )
    rss = torch.sqrt((img.real**2 + img.imag**2).sum(dim=1))
    frac = m.mean(dim=1).clamp(min=1.0 / m.shape[1])
    return (rss / frac[:, None, None]).float()
