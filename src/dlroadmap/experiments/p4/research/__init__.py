"""Phase 4, Research Topics: the topic outgrew one file, so each node has its own module here
(diffusion.py, foundation.py, multimodal.py), found by rule from the node id and loaded alone."""
