"""Accelerated multi-coil MRI reconstruction: classical (zero-filled, SENSE, CG-SENSE, L1-wavelet,
TV) and learned (RecurrentVarNet) solvers. The operators, masks, coil maps, acquisition simulation
and metrics they share are in :mod:`workbench.physics.mri`.
"""
