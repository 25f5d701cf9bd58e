"""Fuzz suites: each class of outside input against the real entry point that takes it."""
