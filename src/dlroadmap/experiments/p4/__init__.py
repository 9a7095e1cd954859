"""Phase 4: Research & Deployment: one module per topic, one Experiment per bullet."""
