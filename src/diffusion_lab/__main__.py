from diffusion_lab.cli import main

raise SystemExit(main())
