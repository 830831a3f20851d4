"""Reports: what staff read (tables on screen, JSON for scripts)."""
