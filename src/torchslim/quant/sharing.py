"""Weight sharing: k-means codebooks per layer with fine-tuned centroids (Deep Compression).

Being built for issue 7.
"""
