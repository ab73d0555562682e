"""``python -m appliance`` is the ``layerwatch`` command."""

from appliance.cli import main

raise SystemExit(main())
