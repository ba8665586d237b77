"""Rendering figures, tables and pages for the site: laying out results, never computing them."""
