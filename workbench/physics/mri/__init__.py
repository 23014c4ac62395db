"""Accelerated multi-coil MRI: operators, masks, coil maps, classical and learned solvers.

Conventions (see ``specs/mri.md`` §1): images ``(N, H, W)`` complex, k-space ``(N, C, H, W)``
complex, centred orthonormal FFT over the last two axes with DC at ``(H//2, W//2)``, 1-D masks
select columns (phase encodes along W) and broadcast along H.
"""
