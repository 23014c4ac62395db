"""Brain-tumour growth physics: the MNI152 tissue atlas and the Fisher–Kolmogorov forward solver."""
