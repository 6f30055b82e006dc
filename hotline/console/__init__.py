"""The agents' browser console at /console."""
