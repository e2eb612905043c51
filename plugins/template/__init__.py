"""Template (Tracery-style) text generator."""
