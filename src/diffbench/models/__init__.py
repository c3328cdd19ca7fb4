"""Models diffbench ships or builds: the embedded default model and tiny models from configs."""
