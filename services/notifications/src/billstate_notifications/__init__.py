"""Renders notices per kind and locale and delivers them through channels."""
