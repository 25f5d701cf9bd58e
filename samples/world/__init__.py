"""Deterministic generator of railway carriages, graffiti, distractors and lighting."""
