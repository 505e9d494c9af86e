"""``python -m geo_router``: the ``geo-router`` command line."""

from geo_router.cli import main

main()
