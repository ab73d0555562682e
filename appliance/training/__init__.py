"""Training and export of the Layerwatch failure model (torch is imported only in this package).

``python -m appliance.training`` reproduces the shipped model in ``models/`` from ``../shared/data``
with a fixed seed. Nothing here is imported by the appliance at run time.
"""
