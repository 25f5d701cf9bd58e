"""``python -m viewer``: the viewer without the ``graffiti-edge`` umbrella command."""

from viewer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
