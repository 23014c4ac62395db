from workbench.ui import compare

compare.render()
