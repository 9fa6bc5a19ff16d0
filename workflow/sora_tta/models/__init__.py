"""Checkpoint-compatible Open-Sora v2.0 model stack (MMDiT, video autoencoder, text encoders)."""
