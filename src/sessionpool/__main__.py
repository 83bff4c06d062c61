"""`python -m sessionpool`: the same command line as the `sessionpool` script."""

from .cli import main

raise SystemExit(main())
