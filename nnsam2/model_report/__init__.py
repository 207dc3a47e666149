"""A static HTML report of a trained model folder (``nnsam2_report``): see :mod:`.build`.

Nothing is imported here, so that checking the model folder (:mod:`.layout`) stays light and a
wrong path is reported before matplotlib, jinja2 and nnU-Net's evaluation are loaded.
"""
