"""Shared core of linetwin: settings, the normalised sample, logging and errors."""
