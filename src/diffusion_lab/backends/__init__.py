"""What predicts noise: the models behind the Part A algorithms."""

from diffusion_lab.backends.base import ModelOutput, NoiseModel, UnknownPrompt

__all__ = ["ModelOutput", "NoiseModel", "UnknownPrompt"]
