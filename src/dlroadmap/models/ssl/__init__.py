"""Self-supervised models: autoencoders (linear, MLP, convolutional) and contrastive learners (SimCLR, MoCo)."""
