"""What detectors consume per column kind: robust numeric scaling and embeddings (built-in, TorchScript). May import data/; no Beam."""
