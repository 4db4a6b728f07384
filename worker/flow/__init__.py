"""The pipeline's steps, one module each; `worker.pipeline` is their face (import from there)."""
