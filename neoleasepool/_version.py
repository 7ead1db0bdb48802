"""The package version, kept in one place for setup.cfg and the CLI."""

__version__ = "0.1.0"
