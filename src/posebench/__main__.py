from posebench.cli import main

raise SystemExit(main())
