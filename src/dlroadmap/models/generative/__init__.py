"""Generative models: VAE, DCGAN, and the U-Net and noise schedules of diffusion."""
