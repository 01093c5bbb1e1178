from limapy.cli import main

raise SystemExit(main())
