"""Services over the city and the store: locating reports, reports, subscribers."""
