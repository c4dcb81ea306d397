from vidstyle.cli import main

raise SystemExit(main())
