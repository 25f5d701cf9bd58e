"""``python -m samples``: the sample-world command line."""

from samples.cli import main

raise SystemExit(main())
