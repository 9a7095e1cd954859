"""Explaining trained models: which inputs matter, globally and for one prediction."""
