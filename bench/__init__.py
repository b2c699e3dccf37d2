"""resnet-bench: profile and time ResNet-family variants (see README.md)."""

__version__ = "0.1.0"
