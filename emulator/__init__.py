"""A local emulator of the Clinia Registry API, for tests, the demo and development without keys."""
