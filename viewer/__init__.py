"""Operator clip viewer: browse, play and review the clips the trains uploaded (docs/viewer.md)."""
