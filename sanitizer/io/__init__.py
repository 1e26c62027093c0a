"""Input and files: filesystems, finding the input, which files are read, reading shards into Arrow batches, the planned input schema. May import data/; never beam/, detectors/ or review/."""
