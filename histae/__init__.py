"""histae: a convolutional autoencoder trained only on a differentiable soft-histogram loss."""

__version__ = "0.1.0"
