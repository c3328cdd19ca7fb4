"""What every benchmark's report shares: figure plumbing."""
