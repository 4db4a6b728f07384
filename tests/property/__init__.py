"""Property tests of the pure core against the emulator's pure state model."""
