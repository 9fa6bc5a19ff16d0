"""The fake world of the demo and the tests: synthetic UCF-101, the procedural world, the tiny
checkpoint family, the proxy models pretrained on the world, synthetic clips."""
