"""diffusion_lab: the code behind the 'Fun with Diffusion Models' reproduction site."""

__version__ = "0.1.0"
