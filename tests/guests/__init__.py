"""QEMU guests of Debian's own kernels (5.10, 6.1, 6.12) that run a command from
this checkout: boot() for one command, scripts/kernel-matrix.sh for the tests.
Everything they need is built once and cached (image.py says what)."""

from .image import Image, ensure_image
from .kernels import KERNELS
from .qemu import GuestResult, boot

__all__ = ["KERNELS", "GuestResult", "Image", "boot", "ensure_image"]
