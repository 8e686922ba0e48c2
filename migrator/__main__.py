"""Allow `python -m migrator`."""

from migrator.cli import main

raise SystemExit(main())
