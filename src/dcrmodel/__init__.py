"""dcrmodel: Differential Chromatic Refraction models of the sky for image differencing."""

__version__ = "0.1.0"
