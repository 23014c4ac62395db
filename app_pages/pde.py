from workbench.ui import pde

pde.render()
