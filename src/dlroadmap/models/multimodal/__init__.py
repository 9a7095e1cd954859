"""Models that read more than one modality: CLIP (images and text in one embedding space) and a
Flamingo-style model (a frozen language model that reads images through gated cross-attention)."""
