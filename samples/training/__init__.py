"""Training of the demonstration detector (needs the ``train`` extra: torch).

Only the ``train`` command imports this package; nothing the edge modules run does, so torch
never becomes a run-time dependency.
"""
