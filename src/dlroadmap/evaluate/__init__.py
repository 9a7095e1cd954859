"""Model evaluation: metrics written from scratch (checked against sklearn.metrics) and plots."""
