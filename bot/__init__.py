"""Garda: an assistant for the official chat channels of government institutions."""

__version__ = "0.1.0"
