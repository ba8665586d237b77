"""The judge: a small CNN MNIST classifier the project trains itself, to score generated digits.

Its penultimate layer is the feature space of the Frechet distance in metrics.py (an
MNIST-sized stand-in for the Inception features of FID). No dropout: nn.Dropout draws from
the global RNG, which would break the one-generator-per-draw rule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffusion_lab.mnist.data import MnistSplits
from diffusion_lab.mnist.precision import autocast, resolve_precision
from diffusion_lab.mnist.recipes import JudgeRecipe
from diffusion_lab.mnist.training import TrainingResult, fit, seeded, training_subset


class JudgeNet(nn.Module):
    """conv-conv-pool, conv-conv-pool, linear (features), linear (logits)."""

    def __init__(self, channels: int = 32, feature_dim: int = 128, num_classes: int = 10):
        super().__init__()
        c = channels

        def conv(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *conv(1, c), *conv(c, c), nn.MaxPool2d(2),  # 14x14
            *conv(c, 2 * c), *conv(2 * c, 2 * c), nn.MaxPool2d(2),  # 7x7
            nn.Flatten(),
            nn.Linear(2 * c * 7 * 7, feature_dim),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


def make_judge(recipe: JudgeRecipe) -> JudgeNet:
    return JudgeNet(channels=recipe.channels, feature_dim=recipe.feature_dim)


def train_judge(
    recipe: JudgeRecipe, data: MnistSplits, device: torch.device | str = "cpu", seed: int = 0, progress: bool = True
) -> TrainingResult:
    """Cross-entropy on the MNIST training set (or its seeded subset); Adam, LR x0.1 overall."""
    run_name = "judge"
    images, labels = training_subset(data, recipe.train_subset, seed, run_name)

    def batch_loss(model, x, y, _generator):
        return F.cross_entropy(model(x).float(), y)

    model = seeded(lambda: make_judge(recipe), seed, f"{run_name}/init")
    return fit(
        model, images, labels, batch_loss,
        run_name=run_name, seed=seed, batch_size=recipe.batch_size, epochs=recipe.epochs,
        learning_rate=recipe.learning_rate, lr_gamma=0.1 ** (1.0 / recipe.epochs),
        device=device, precision=recipe.precision, progress=progress, recipe=recipe.to_dict(),
    )


class Judge:
    """A trained JudgeNet with batched, no-grad evaluation. Inputs: (N, 1, 28, 28) in [0, 1];
    generated samples are clipped to [0, 1] first, as they would be when saved as images."""

    def __init__(self, net: JudgeNet, device: torch.device | str = "cpu", precision: str = "fp32",
                 batch_size: int = 1000):
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.net = net.to(self.device).eval()
        self.batch_size = batch_size

    @classmethod
    def from_state_dict(cls, recipe: JudgeRecipe, state_dict: dict, device="cpu", precision="fp32") -> "Judge":
        net = make_judge(recipe)
        net.load_state_dict(state_dict)
        return cls(net, device, precision)

    @torch.no_grad()
    def _map(self, images: torch.Tensor, fn) -> torch.Tensor:
        outputs = []
        for begin in range(0, images.shape[0], self.batch_size):
            batch = images[begin : begin + self.batch_size].to(self.device).float().clamp(0, 1)
            with autocast(self.device, self.precision):
                outputs.append(fn(batch).float().cpu())
        return torch.cat(outputs)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self._map(images, self.net)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images).argmax(dim=1)

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        return (self.predict(images) == labels.cpu()).float().mean().item()

    def per_class_accuracy(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> list[float]:
        correct = self.predict(images) == labels.cpu()
        return [correct[labels.cpu() == k].float().mean().item() for k in range(num_classes)]

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Softmax over the ten digits, (N, 10) float32."""
        return self.logits(images).softmax(dim=1)

    def verdicts(self, images: torch.Tensor, confidence: float = 0.9) -> dict:
        """What the judge reads in unlabelled images (N, 1, 28, 28): the share it reads as some digit
        with probability >= `confidence`, and the share it assigns to each digit (argmax)."""
        probabilities = self.probabilities(images)
        counts = torch.bincount(probabilities.argmax(dim=1), minlength=probabilities.shape[1])
        return {
            "confident_fraction": (probabilities.max(dim=1).values >= confidence).float().mean().item(),
            "class_shares": (counts.float() / images.shape[0]).tolist(),
            "confidence": confidence,
        }

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations (N, feature_dim), float32 on the CPU."""
        return self._map(images, self.net.features)
