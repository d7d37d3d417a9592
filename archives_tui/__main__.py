from archives_tui.cli import main

raise SystemExit(main())
