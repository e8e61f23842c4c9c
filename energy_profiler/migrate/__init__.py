"""Reading the older tool's (Green-deep-learning's) registry, settings and history."""
