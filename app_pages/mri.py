from workbench.ui import mri

mri.render()
