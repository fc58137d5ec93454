"""The simulated battery pilot line: the plant's truth. Nothing outside plant/ may import it."""
