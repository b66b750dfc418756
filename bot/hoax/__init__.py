"""Hoax correction: the approved registry, the matcher, and the tools around them."""
