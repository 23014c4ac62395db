from workbench.ui import eels

eels.render()
