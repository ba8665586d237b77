"""Run cache, provenance, and the rendering of figures, tables and pages for the site."""
