"""redpss: a Python re-implementation of RED-PSS, the process stack of a RED data warehouse."""

__version__ = "0.1.0"
