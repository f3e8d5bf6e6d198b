from hemalens.cli import main

raise SystemExit(main())
