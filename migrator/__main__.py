"""Allow `python -m migrator`."""

from migrator.cli.main import main

raise SystemExit(main())
