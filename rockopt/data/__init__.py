"""Data: the Dacon layout, checks, folds, images, transforms, samplers and the training stream."""
