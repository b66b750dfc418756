"""Garda's brain: from one citizen message to one Decision."""
