"""Shared test helpers: the tiny training set-up, the contract model and the photo assets."""
