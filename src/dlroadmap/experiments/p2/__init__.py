"""Phase 2: Core Deep Learning (Intermediate): one module per topic, one Experiment per bullet."""
