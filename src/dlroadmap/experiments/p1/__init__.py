"""Phase 1: Foundations: one module per topic, one Experiment per bullet."""
