"""The explicit list of domains; each module exposes ``DOMAIN`` (a ``DomainSpec``)."""

DOMAIN_MODULES: list[str] = [
    "workbench.datasets.ot",
    "workbench.datasets.tumor",
    "workbench.datasets.eels",
    "workbench.datasets.mri",
    "workbench.datasets.pde",
]
