"""Channels residents write on. Each folder is one channel behind the Channel interface."""
