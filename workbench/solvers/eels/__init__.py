"""EELS spectrum-image anomaly detection: PCA baselines and a 3-D convolutional VAE."""
