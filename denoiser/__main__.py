from denoiser.cli.main import main

raise SystemExit(main())
