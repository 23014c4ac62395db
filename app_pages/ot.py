from workbench.ui import ot

ot.render()
