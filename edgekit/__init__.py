"""edgekit: Qwen3.5 small models as int4 ONNX bundles, run on device without torch."""

from edgekit.errors import EdgekitError

__version__ = "0.1.0"


def load(bundle_dir, **options):
    """Load a bundle folder and return its runtime model (see ``edgekit.runtimes.load``)."""
    from edgekit.runtimes import load as _load

    return _load(bundle_dir, **options)


__all__ = ["EdgekitError", "load", "__version__"]
