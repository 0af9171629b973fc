"""What a result means: optimize_mode, several objectives, the keys of a final result, result records."""
