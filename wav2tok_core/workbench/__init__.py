"""The notebooks' side: run folders, the papermill pipeline, figures, live curves and widgets.

May import every layer except cli.
"""
