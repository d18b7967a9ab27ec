"""Many images at once: finding them on disk, writing their results, and the Ray Data engine (an optional extra)."""
