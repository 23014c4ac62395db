from workbench.ui import tumor

tumor.render()
