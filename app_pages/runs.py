from workbench.ui import runs

runs.render()
