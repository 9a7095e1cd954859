"""Phase 3: Advanced Concepts: one module per topic, one Experiment per bullet."""
