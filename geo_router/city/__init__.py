"""The engine: profile, layers, indexes, the city snapshot and the router."""
