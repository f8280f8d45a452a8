"""dropcli: train and study dropout MLPs on Fashion-MNIST."""

__version__ = "0.1.0"
