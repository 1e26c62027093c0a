"""Beam stages of a sanitize run, its planning and its launcher; ``Sanitize`` is the one to apply in your own pipeline.

May import every package but review/ and cli/.

    from sanitizer.beam import Sanitize
    manifest_uri = p | Sanitize(input=..., output=..., label_column=...)
"""


def __getattr__(name: str):
    if name == "Sanitize":  # imported on first use: the package's other modules stay importable on their own
        from sanitizer.beam.sanitize import Sanitize

        return Sanitize
    raise AttributeError(f"module 'sanitizer.beam' has no attribute {name!r}")


__all__ = ["Sanitize"]
