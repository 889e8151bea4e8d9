"""Deployment: the local runner, the dev stand-ins, container and cluster files."""
