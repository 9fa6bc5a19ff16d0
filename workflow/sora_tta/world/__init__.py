"""A procedural video world and tiny proxy models pretrained on it."""
