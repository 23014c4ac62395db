from workbench.ui import home

home.render()
