"""Phase 1 lessons: the maths and classic ML under deep learning, written out and checked."""
