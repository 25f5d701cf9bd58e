"""``graffiti-edge``: the umbrella command for local use and for the operator's workstation."""
