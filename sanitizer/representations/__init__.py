"""What detectors consume per column kind: robust numeric scaling, embeddings (built-in, TorchScript),
categorical codes (categorical) and days since 1970 (dates), the last two filled into the batch by
``sanitizer.data.extract`` through the plan's encoders. May import data/; no Beam."""
