"""Bulk jobs over whole files."""
