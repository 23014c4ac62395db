"""The explicit list of solvers. Adding a solver is one module and one line here."""

SOLVER_MODULES: list[str] = [
    # optimal transport
    "workbench.solvers.ot.sinkhorn",
    "workbench.solvers.ot.sinkhorn_newton",
    "workbench.solvers.ot.emd",
    # EELS
    "workbench.solvers.eels.pca_recon",
    "workbench.solvers.eels.pca_t2",
    "workbench.solvers.eels.pca_bulk",
    "workbench.solvers.eels.cvae3d",
    # MRI
    "workbench.solvers.mri.zero_filled",
    "workbench.solvers.mri.sense_adj",
    "workbench.solvers.mri.cg_sense",
    "workbench.solvers.mri.l1_wavelet",
    "workbench.solvers.mri.tv",
    "workbench.solvers.mri.recurrentvarnet",
    "workbench.solvers.mri.dds",
    "workbench.solvers.mri.dps",
    # tumour growth
    "workbench.solvers.tumor.db_lookup",
    "workbench.solvers.tumor.db_lookup_fast",
    "workbench.solvers.tumor.cmaes_fit",
    # PDEs
    "workbench.solvers.pde.reference",
    "workbench.solvers.pde.gp_hm",
    "workbench.solvers.pde.gp_se",
    "workbench.solvers.pde.gp_matern",
    "workbench.solvers.pde.pinn",
    "workbench.solvers.pde.pinn_fourier",
    "workbench.solvers.pde.pinn_uniform",
    "workbench.solvers.pde.pinn_rar",
    "workbench.solvers.pde.pinn_rad",
    "workbench.solvers.pde.pinn_aas",
    "workbench.solvers.pde.rgnp",
    "workbench.solvers.pde.rgnp_inverse",
]
