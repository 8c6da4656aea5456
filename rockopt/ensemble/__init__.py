"""Ensembling: blend members' out-of-fold probabilities with fitted weights."""
