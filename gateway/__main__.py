"""`python -m gateway`: start the gateway from the GATEWAY_* environment variables."""

from .server import main

raise SystemExit(main())
