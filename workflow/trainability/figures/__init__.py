"""Pictures, videos and tables of results.

``style`` (the paper's colours, titles, saving a figure), ``landscapes`` (landscape panels,
box-counting plots, the six-panel figure), ``zoom`` (frame images, the zoom strip, dimension
against depth), ``uncertainty`` and ``line`` (the estimators' diagnostics), ``video`` (the
zoom video), ``tables`` (the dimension table). Imports every lower layer, never the ops.
"""
