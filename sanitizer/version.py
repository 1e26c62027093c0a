"""The package version, in a leaf module anything may import without importing the package's facade."""

__version__ = "0.1.0"
