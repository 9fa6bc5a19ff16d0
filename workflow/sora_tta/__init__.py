"""LoRA test-time adaptation of Open-Sora v2.0 for video continuation."""

__version__ = "0.1.0"
