"""LoRA test-time adaptation and per-video generation."""
